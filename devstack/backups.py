"""Backups of the stack's PostgreSQL with pgBackRest, and restores that prove them.

pgBackRest (Debian's package) keeps the cluster's base backups and its continuously archived
WAL in one repository (`BACKUP_REPO`), checksums every file it copies and checks them again when
it restores, and expires what `BACKUP_RETENTION` no longer keeps; so the cluster restores to
any moment since its oldest kept backup. Beside each backup, `make backup` writes a logical dump
(`pg_dump -Fc`) of each of the stack's schemas, with their SHA-256 sums, for a restore of one
schema or to another major version. A restore is always into a cluster of its own, on its own
port (`make restore-check`): nothing here overwrites a running server.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from devstack.postgres import (
    Cluster,
    admin_value,
    as_postgres,
    as_root,
    cluster_dir,
    install_file,
    pgbackrest_installed,
    read_cluster,
    remove_cluster_dir,
    render,
    run,
    start_cluster,
    stop_cluster,
    wait_primary,
    write_server_config,
)
from devstack.settings import ROOT, StackSettings

STANZA = "relais"
CONFIG = Path("/etc/pgbackrest/relais.conf")
ARCHIVING = "relais-archiving.conf"
# At most this much WAL waits in pg_wal while archiving fails (pgBackRest then drops it).
ARCHIVE_QUEUE_MAX = "4GiB"
# A segment is archived within this many seconds of being written, busy or not.
ARCHIVE_TIMEOUT = 60
# What a replication slot may hold back before the server gives up on its replica.
MAX_SLOT_WAL_KEEP = "4GB"
CHECKS = ROOT / "infra" / "postgresql" / "restore-checks.sql"
# The checks' columns that count what a restore holds; the others count violations.
COUNTS = ("orders", "paid_orders", "payments", "ledger_transactions", "ledger_entries")
VIOLATIONS = {
    "unbalanced_transactions": "ledger transactions that do not sum to zero",
    "transactions_without_entries": "ledger transactions without entries",
    "paid_orders_without_capture": "paid orders without a captured ledger entry",
    "orders_paid_twice": "orders paid twice",
    "payments_settled_differently": "payments core and the worker settled differently",
    "succeeded_payments_of_unpaid_orders": "succeeded payments whose order is not paid",
}


def pgbackrest(*args: str, capture: bool = False) -> str:
    """pgBackRest on the stack's stanza, as the server's user."""
    return run(
        as_postgres("pgbackrest", f"--config={CONFIG}", f"--stanza={STANZA}", *args),
        capture=capture,
    )


def is_local(config: StackSettings) -> bool:
    """Whether the stack's PostgreSQL runs on this machine (its backups are this machine's)."""
    return config.database_host.rsplit(":", 1)[0] in {"127.0.0.1", "localhost", "::1"}


def setup_archiving(config: StackSettings) -> Cluster | None:
    """pgBackRest's configuration and stanza, and the server's WAL archiving into it (restarting
    the server the first time: `archive_mode` takes a restart). Idempotent; None (and nothing
    done) when the stack's PostgreSQL is not this machine's."""
    if not is_local(config):
        print(f"PostgreSQL at {config.database_host} is not this machine's: its host backs it up")
        return None
    if not pgbackrest_installed():
        raise SystemExit("pgBackRest is not installed: `make system-deps` installs it")
    cluster = asyncio.run(read_cluster(config.postgres_admin_url))
    values = {
        "postgresql_pgbackrest_config": CONFIG,
        "postgresql_pgbackrest_stanza": STANZA,
        "postgresql_pgbackrest_repo": config.backup_repo,
        "postgresql_pgbackrest_retention_full": config.backup_retention,
        "postgresql_pgbackrest_archive_queue_max": ARCHIVE_QUEUE_MAX,
        "postgresql_pgbackrest_log_path": "/var/log/pgbackrest",
        "postgresql_data_directory": cluster.data_directory,
        "postgresql_port": cluster.port,
        "postgresql_socket_directory": cluster.socket_directory,
        "postgresql_archive_timeout": ARCHIVE_TIMEOUT,
        "postgresql_max_slot_wal_keep_size": MAX_SLOT_WAL_KEEP,
    }
    for folder in (config.backup_repo, Path("/var/log/pgbackrest")):
        run(as_root("install", "-d", "-o", "postgres", "-g", "postgres", "-m", "0750", folder))
    install_file(CONFIG, render("pgbackrest.conf.j2", **values), owner="postgres", mode="0640")
    changed = install_file(cluster.conf_d / ARCHIVING, render("archiving.conf.j2", **values))
    admin = config.postgres_admin_url
    if asyncio.run(admin_value(admin, "SHOW archive_mode")) != "on":
        print("turning WAL archiving on: PostgreSQL restarts once")
        restart_machine_cluster(cluster)
    elif changed:
        asyncio.run(admin_value(admin, "SELECT pg_reload_conf()"))
    pgbackrest("stanza-create")
    return cluster


def restart_machine_cluster(cluster: Cluster) -> None:
    """Restart the machine's cluster with Debian's wrapper (its name is its config folder's)."""
    name = cluster.config_file.parent.name
    run(
        as_root("pg_ctlcluster", "--skip-systemctl-redirect", str(cluster.version), name, "restart")
    )


def info() -> dict[str, Any]:
    """pgBackRest's account of the stanza: its backups, oldest first, and its archived WAL."""
    stanzas = json.loads(pgbackrest("--output=json", "info", capture=True))
    return stanzas[0] if stanzas else {}


def dumps_root(config: StackSettings) -> Path:
    """The stack's logical dumps: one folder per backup label, one file per schema."""
    return config.backup_repo / "dumps" / config.database_name


async def _schemas(config: StackSettings) -> list[str]:
    conn = await asyncpg.connect(config.admin_database_url)
    try:
        rows = await conn.fetch(
            """SELECT nspname FROM pg_namespace
               WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
                 AND nspname <> 'public' ORDER BY nspname"""
        )
    finally:
        await conn.close()
    return [row["nspname"] for row in rows]


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class BackupReport:
    """What `make backup` did: the backup's label and type, seconds and bytes of each part."""

    label: str
    kind: str
    physical_seconds: float
    physical_bytes: int
    repository_bytes: int
    dump_seconds: float
    dump_bytes: int
    schemas: list[str]


def backup(config: StackSettings, kind: str = "full") -> BackupReport:
    """A base backup of the cluster (`full`, `diff` or `incr`), then a dump of each of the
    stack's schemas beside it; what retention no longer keeps is removed."""
    cluster = setup_archiving(config)
    if cluster is None:
        raise SystemExit("nothing to back up on this machine")
    started = time.monotonic()
    pgbackrest(f"--type={kind}", "backup")
    physical = time.monotonic() - started
    stanza = info()
    newest = stanza["backup"][-1]
    started = time.monotonic()
    schemas = asyncio.run(_schemas(config))
    folder = dumps_root(config) / newest["label"]
    # The dumps hold password hashes and second factors' secrets: the owner's alone.
    for parent in (config.backup_repo / "dumps", dumps_root(config), folder):
        parent.mkdir(mode=0o700, exist_ok=True)
    for schema in schemas:
        run(
            [
                str(cluster.bin / "pg_dump"),
                "--format=custom",
                f"--schema={schema}",
                f"--file={folder / f'{schema}.dump'}",
                config.admin_database_url,
            ]
        )
    for dump in folder.glob("*.dump"):
        dump.chmod(0o600)
    sums = "".join(f"{sha256(folder / f'{s}.dump')}  {s}.dump\n" for s in schemas)
    (folder / "SHA256SUMS").write_text(sums)
    dumped = time.monotonic() - started
    prune_dumps(config, stanza)
    return BackupReport(
        label=newest["label"],
        kind=newest["type"],
        physical_seconds=round(physical, 2),
        physical_bytes=newest["info"]["size"],
        repository_bytes=newest["info"]["repository"]["delta"],
        dump_seconds=round(dumped, 2),
        dump_bytes=sum(path.stat().st_size for path in folder.glob("*.dump")),
        schemas=schemas,
    )


def prune_dumps(config: StackSettings, stanza: dict[str, Any]) -> list[str]:
    """Remove the dumps of backups pgBackRest has expired; their labels."""
    kept = {entry["label"] for entry in stanza.get("backup", [])}
    root = dumps_root(config)
    if not root.is_dir():
        return []
    pruned = [path.name for path in root.iterdir() if path.is_dir() and path.name not in kept]
    for name in pruned:
        shutil.rmtree(root / name)
    return sorted(pruned)


def verify_dumps(folder: Path) -> bool:
    """Whether every dump in `folder` still has the SHA-256 written beside it."""
    sums = folder / "SHA256SUMS"
    if not sums.exists():
        return False
    for line in sums.read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        if not (folder / name).exists() or sha256(folder / name) != digest:
            return False
    return True


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return ""


def show_backups(config: StackSettings, *, verify: bool = False) -> int:
    """`make backups`: each backup, the span it restores to, its dumps and their sums."""
    if not is_local(config) or not pgbackrest_installed():
        print("no backups on this machine (`make backup` takes one)")
        return 1
    stanza = info()
    backups = stanza.get("backup", [])
    if not backups:
        print(f"no backup in {config.backup_repo} yet: `make backup` takes one")
        return 1
    print(
        f"pgBackRest repository {config.backup_repo}, stanza {STANZA}, keeping "
        f"{config.backup_retention} full backups"
    )
    print(
        f"{'label':<34} {'type':<5} {'finished':<24} {'took':>6} {'size':>10} {'stored':>10}  dumps"
    )
    for entry in backups:
        start, stop = entry["timestamp"]["start"], entry["timestamp"]["stop"]
        folder = dumps_root(config) / entry["label"]
        dumps = "none"
        if folder.exists():
            dumps = f"{len(list(folder.glob('*.dump')))} schemas"
            dumps += (", sums ok" if verify_dumps(folder) else ", SUMS DIFFER") if verify else ""
        print(
            f"{entry['label']:<34} {entry['type']:<5} {_when(stop):<24} {stop - start:>5}s "
            f"{_size(entry['info']['size']):>10} {_size(entry['info']['repository']['delta']):>10}"
            f"  {dumps}"
        )
    archive = stanza.get("archive", [{}])[-1]
    print(f"WAL archived: {archive.get('min')} .. {archive.get('max')}")
    print(
        f"restorable to any moment from {_when(backups[0]['timestamp']['stop'])} to the last "
        f"archived WAL (at most {ARCHIVE_TIMEOUT} s old while the server writes)"
    )
    if verify:
        pgbackrest("verify")
        print("pgBackRest verify: every file of the repository matches its checksum")
    return 0


@dataclass
class Restored:
    """A restored copy of the cluster, running on its own port."""

    name: str
    path: Path
    port: int
    bin: Path
    restore_seconds: float
    recovery_seconds: float

    def url(self, database: str) -> str:
        """The administrator's DSN on `database` of the restored cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        """Stop the restored cluster and remove its folder."""
        stop_cluster(self.bin, self.path, "immediate")
        remove_cluster_dir(self.name)


def restore(config: StackSettings, *, port: int, name: str, target: str | None = None) -> Restored:
    """Restore the newest backup into a cluster of its own on `port`, replaying the archived
    WAL up to `target` (a time PostgreSQL reads, with its zone) or to its end; started and
    promoted. Archiving is off in the copy: it never writes into the repository."""
    cluster = asyncio.run(read_cluster(config.postgres_admin_url))
    # What the server wrote up to now reaches the repository first (a segment switch, then
    # pgBackRest waits for its archiving), so a target in the last minute is restorable.
    pgbackrest("check")
    path = cluster_dir(name)
    started = time.monotonic()
    target_options = (
        ["--type=time", f"--target={target}", "--target-action=promote"] if target else []
    )
    pgbackrest(f"--pg1-path={path}", "--archive-mode=off", *target_options, "restore")
    write_server_config(path, port)
    restored = time.monotonic() - started
    started = time.monotonic()
    copy = Restored(name, path, port, cluster.bin, round(restored, 2), 0.0)
    try:
        start_cluster(cluster.bin, path)
        asyncio.run(wait_primary(copy.url("postgres"), 600))
    except BaseException:
        copy.remove()
        raise
    copy.recovery_seconds = round(time.monotonic() - started, 2)
    return copy


async def data_checks(url: str) -> dict[str, int]:
    """The restore checks (counts and violations) on the stack's database at `url`."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(CHECKS.read_text())
    finally:
        await conn.close()
    assert row is not None
    return dict(row)


def violations(checks: dict[str, int]) -> dict[str, int]:
    """The checks that found something wrong."""
    return {name: value for name, value in checks.items() if name in VIOLATIONS and value}


def described(checks: dict[str, int]) -> list[str]:
    """The violations in words ("2 orders paid twice")."""
    return [f"{count} {VIOLATIONS[name]}" for name, count in violations(checks).items()]


def restore_check(config: StackSettings, *, port: int, target: str | None = None) -> int:
    """`make restore-check`: the newest backup restored into a scratch cluster on `port` (to
    `target`, else to the end of the archived WAL), the stack's database checked in it; one
    JSON line with the counts, violations and timings. Non-zero when a check fails."""
    name = f"restore-{config.database_name}-{port}"
    copy = restore(config, port=port, name=name, target=target)
    try:
        checks = asyncio.run(data_checks(copy.url(config.database_name)))
    finally:
        copy.remove()
    wrong = violations(checks)
    report = {
        "target": target or "end of archived WAL",
        "restore_seconds": copy.restore_seconds,
        "recovery_seconds": copy.recovery_seconds,
        "counts": {name: checks[name] for name in COUNTS},
        "violations": wrong,
    }
    print(json.dumps(report))
    return 1 if wrong else 0
