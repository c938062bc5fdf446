"""The machine's PostgreSQL as the stack's backups and replica see it: the cluster the stack's
database lives on (read from the server), commands run as its `postgres` user, and clusters of
the stack's own (a restore, a replica) started and stopped from their data folder."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import jinja2

from devstack.settings import ROOT

# The postgresql role's templates: the same files on a host and in the native stack.
TEMPLATES = ROOT / "infra" / "ansible" / "roles" / "postgresql" / "templates"
# Where the stack's own clusters live (a restore, a replica): a folder of `postgres`, which the
# server's user reaches whatever the mode of the folder the checkout is in.
CLUSTERS_ROOT = Path("/var/lib/postgresql/relais")


@dataclass(frozen=True)
class Cluster:
    """A running PostgreSQL server's data folder, configuration file, port and socket folder."""

    data_directory: Path
    config_file: Path
    port: int
    socket_directory: str
    version: int

    @property
    def bin(self) -> Path:
        """The server's programs (Debian's layout: one folder per major version)."""
        return Path(f"/usr/lib/postgresql/{self.version}/bin")

    @property
    def conf_d(self) -> Path:
        """The folder the server's configuration includes (Debian's `include_dir`)."""
        return self.config_file.parent / "conf.d"


async def read_cluster(admin_url: str) -> Cluster:
    """The cluster behind `admin_url`, as the server describes itself."""
    conn = await asyncpg.connect(admin_url)
    try:
        values = {
            name: await conn.fetchval(f"SHOW {name}")
            for name in (
                "data_directory",
                "config_file",
                "port",
                "unix_socket_directories",
                "server_version_num",
            )
        }
    finally:
        await conn.close()
    return Cluster(
        data_directory=Path(values["data_directory"]),
        config_file=Path(values["config_file"]),
        port=int(values["port"]),
        socket_directory=values["unix_socket_directories"].split(",")[0].strip(),
        version=int(values["server_version_num"]) // 10000,
    )


async def admin_value(admin_url: str, query: str, *args: object) -> Any:
    """The one value `query` returns on the administrator's connection at `admin_url`."""
    conn = await asyncpg.connect(admin_url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


def as_postgres(*argv: str | Path) -> list[str]:
    """`argv` run as the server's user (`runuser` as root, `sudo` otherwise)."""
    wrapper = (
        ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else ["sudo", "-u", "postgres"]
    )
    return [*wrapper, *map(str, argv)]


def as_root(*argv: str | Path) -> list[str]:
    """`argv` run as root (itself as root, through `sudo` otherwise)."""
    return [*([] if os.geteuid() == 0 else ["sudo"]), *map(str, argv)]


def run(argv: list[str], *, capture: bool = False) -> str:
    """Run a command; its output when `capture`; its error output in the exception."""
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr.strip()}")
    if not capture and result.stdout.strip():
        print(result.stdout.strip())
    return result.stdout


def render(template: str, **values: object) -> str:
    """One of the postgresql role's templates, with `values`."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - configuration files, not HTML
    )
    return environment.get_template(template).render(**values)


def install_file(path: Path, text: str, *, owner: str = "root", mode: str = "0644") -> bool:
    """Write a file only root may write, as `owner`; False when it already held `text`."""
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return False
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".relais") as staged:
        staged.write(text)
        staged.flush()
        run(as_root("install", "-D", "-o", owner, "-g", owner, "-m", mode, staged.name, path))
    return True


def cluster_dir(name: str) -> Path:
    """The data folder of the stack's own cluster `name`, made empty and owned by `postgres`."""
    path = CLUSTERS_ROOT / name
    remove_cluster_dir(name)
    run(as_root("install", "-d", "-o", "postgres", "-g", "postgres", "-m", "0700", path))
    return path


def remove_cluster_dir(name: str) -> None:
    """Remove the stack's own cluster `name`'s data folder (stopped)."""
    path = CLUSTERS_ROOT / name
    if path.exists():
        run(as_root("rm", "-rf", "--one-file-system", path))


def write_server_config(path: Path, port: int, **settings: str) -> None:
    """A cluster of the stack's own: its own port, 127.0.0.1 and a socket in its folder, the
    machine's trust rules (replication included), and `settings`."""
    lines = [
        f"port = {port}",
        "listen_addresses = '127.0.0.1'",
        f"unix_socket_directories = '{path}'",
        "shared_buffers = '128MB'",
        "max_connections = 200",
        *(f"{name} = '{value}'" for name, value in settings.items()),
    ]
    rules = [
        "local all all trust",
        "host all all 127.0.0.1/32 trust",
        "local replication all trust",
        "host replication all 127.0.0.1/32 trust",
    ]
    for name, text in (("postgresql.conf", lines), ("pg_hba.conf", rules)):
        install_file(path / name, "\n".join(text) + "\n", owner="postgres", mode="0600")


def pg_ctl(bin_dir: Path, path: Path, *args: str) -> None:
    """`pg_ctl` on the cluster in `path` (as `postgres`), its log in the cluster's folder."""
    run(as_postgres(bin_dir / "pg_ctl", "-D", path, "-l", path / "server.log", *args), capture=True)


def start_cluster(bin_dir: Path, path: Path, timeout: float = 600.0) -> None:
    """Start the cluster in `path` and wait until it accepts connections."""
    pg_ctl(bin_dir, path, "-w", "-t", str(int(timeout)), "start")


def stop_cluster(bin_dir: Path, path: Path, mode: str = "fast") -> None:
    """Stop the cluster in `path` (`immediate`: as a crash would) if it runs."""
    if (path / "postmaster.pid").exists():
        pg_ctl(bin_dir, path, "-m", mode, "-w", "stop")


async def wait_primary(url: str, limit: float) -> float:
    """Wait until the server at `url` has left recovery (promoted), at most `limit` seconds;
    the seconds waited."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            conn = await asyncpg.connect(url, timeout=5)
            try:
                if not await conn.fetchval("SELECT pg_is_in_recovery()"):
                    return time.monotonic() - started
            finally:
                await conn.close()
        if time.monotonic() - started > limit:
            raise SystemExit(f"{url} did not leave recovery within {limit:.0f} s")
        await asyncio.sleep(0.2)


def pgbackrest_installed() -> bool:
    """Whether pgBackRest (Debian's package, `make up` installs it) is on this machine."""
    return shutil.which("pgbackrest") is not None
