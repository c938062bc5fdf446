"""The services' container images, built and started with podman (`make test-images`).

No Docker engine runs on the machines we test on, and no image registry is reachable; Debian's
podman runs containers there when told to use `runc` (crun refuses their hybrid cgroups) with
explicit ulimits. The base image is therefore made from Debian's archive (`debootstrap`, then
`podman import`: Debian's Python 3.11 in place of the official slim image's) and passed to each
Dockerfile as its `PYTHON_IMAGE`; the Dockerfiles' default stays the official image.

    python -m scripts.images base             make the base image (kept: made once per machine)
    python -m scripts.images build [SERVICE]  build every service's image, or one
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Each service's Dockerfile (the build context is the repository root).
DOCKERFILES = {
    "core": "services/core/Dockerfile",
    "payments": "services/payments/Dockerfile",
    "ai": "services/ai/Dockerfile",
    "gateway": "gateway/Dockerfile",
}
# The compose stack's exporters: Debian's packages, on the same base.
EXPORTERS_DOCKERFILE = "infra/compose/exporters.Dockerfile"
# Debian's own Python, made from the archive: what stands in for python:3.11-slim-bookworm.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_IMAGE = "localhost/relais-python:3.11-bookworm"
PODMAN = ("podman", "--runtime", "runc")
# podman on these machines needs explicit ulimits (a service's sockets and its threads), within
# the hard limits of the process that starts it.
WANTED_LIMITS = {"nofile": (resource.RLIMIT_NOFILE, 65536), "nproc": (resource.RLIMIT_NPROC, 4096)}
# The machine's own folder of wheels that are on no index it reaches (PyTorch's CPU build).
LOCAL_WHEELS = Path("/opt/wheels")
# The machine's CA bundle: an intercepting proxy between a build and PyPI signs with its own CA.
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
TOOLS = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap"}


def ulimits() -> list[str]:
    """podman's `--ulimit` options: what a service wants, or the hard limit if lower."""
    options = []
    for name, (kind, wanted) in WANTED_LIMITS.items():
        hard = resource.getrlimit(kind)[1]
        value = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        options += ["--ulimit", f"{name}={value}:{value}"]
    return options


def image_name(service: str) -> str:
    """The local tag of a service's image."""
    return f"localhost/relais-{service}:test"


def ensure_tools() -> None:
    """Install podman, runc and debootstrap from Debian's packages if any is missing."""
    missing = [package for command, package in TOOLS.items() if shutil.which(command) is None]
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def podman(
    *args: str, check: bool = True, capture: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run podman with runc; its completed process."""
    return subprocess.run(
        [*PODMAN, *args], check=check, text=True, capture_output=capture, timeout=3600
    )


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (deb822 or one-line sources)."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in path.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    with contextlib.suppress(FileNotFoundError):
        for line in Path("/etc/apt/sources.list").read_text().splitlines():
            parts = line.split()
            if parts[:1] == ["deb"] and "security" not in line:
                return next(part for part in parts[1:] if "://" in part)
    return "http://deb.debian.org/debian"


def image_exists(name: str) -> bool:
    """Whether podman holds an image of that name."""
    return podman("image", "exists", name, check=False).returncode == 0


def ensure_base_image() -> str:
    """The base image (Debian bookworm with its Python 3.11), made from the archive once."""
    if image_exists(BASE_IMAGE):
        return BASE_IMAGE
    with tempfile.TemporaryDirectory(prefix="relais-rootfs-") as folder:
        rootfs = Path(folder) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                "bookworm",
                str(rootfs),
                debian_mirror(),
            ],
            check=True,
            capture_output=True,
            timeout=1800,
        )
        shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        # the context closes tar's pipe (an open one is a ResourceWarning, an error in tests)
        with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
            subprocess.run(
                [*PODMAN, "import", "--change", 'CMD ["python3"]', "-", BASE_IMAGE],
                stdin=tar.stdout,
                check=True,
                capture_output=True,
            )
        if tar.returncode != 0:
            raise RuntimeError("tar of the debootstrapped root failed")
    return BASE_IMAGE


def build_args(base: str) -> list[str]:
    """What a build here needs beyond the Dockerfile's defaults: the base image, this machine's
    wheel folder (read-only, for PyTorch's CPU build) and its CA bundle, for pip."""
    args = ["--build-arg", f"PYTHON_IMAGE={base}", "--build-arg", f"DEBIAN_IMAGE={base}"]
    if LOCAL_WHEELS.is_dir():
        args += ["--volume", f"{LOCAL_WHEELS}:/wheels:ro", "--build-arg", "PIP_FIND_LINKS=/wheels"]
        # The CPU index is not reachable here: PyPI stands in (the wheel comes from /wheels).
        args += ["--build-arg", "PIP_EXTRA_INDEX_URL=https://pypi.org/simple"]
    if HOST_CA.is_file():
        args += ["--volume", f"{HOST_CA}:/etc/ssl/certs/build-ca.crt:ro"]
        args += ["--build-arg", "PIP_CERT=/etc/ssl/certs/build-ca.crt"]
    return args


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip()


def revision() -> str:
    """The checkout's commit (an image's `org.opencontainers.image.revision`)."""
    return _git("rev-parse", "HEAD") or "unknown"


def created() -> str:
    """The commit's time (`org.opencontainers.image.created`): the same build of the same commit
    labels its image the same, and reuses its cached layers."""
    return _git("log", "-1", "--format=%cI") or "unknown"


def build(service: str, base: str) -> str:
    """Build a service's image (or the exporters') from the repository root; its tag."""
    name = image_name(service)
    dockerfile = DOCKERFILES.get(service, EXPORTERS_DOCKERFILE)
    result = podman(
        "build",
        # Docker's image format: OCI's has no HEALTHCHECK.
        "--format",
        "docker",
        *ulimits(),
        "--file",
        dockerfile,
        "--tag",
        name,
        *build_args(base),
        "--build-arg",
        f"REVISION={revision()}",
        "--build-arg",
        f"CREATED={created()}",
        str(ROOT),
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-40:]
        raise RuntimeError(f"building {name} failed:\n" + "\n".join(tail))
    return name


def prune() -> None:
    """Remove the images a rebuild left without a tag (the AI image's are 2 GB each)."""
    podman("image", "prune", "--force", check=False)


def _variables(env: Mapping[str, str]) -> list[str]:
    return [item for key, value in env.items() for item in ("--env", f"{key}={value}")]


def run_detached(name: str, image: str, env: Mapping[str, str], *command: str) -> None:
    """Start a container of `image` on the host's network (it reaches only 127.0.0.1). Its
    HEALTHCHECK runs when asked (`wait_healthy`): podman's timer for it needs systemd."""
    podman(
        "run", "--detach", "--name", name, "--network", "host", "--health-interval", "disable",
        *ulimits(), *_variables(env), image, *command,
    )  # fmt: skip


def run_once(
    image: str, *argv: str, env: Mapping[str, str] | None = None, network: str = "host"
) -> subprocess.CompletedProcess[str]:
    """Run a command in a throwaway container of `image` (no health check); its outcome."""
    return podman(
        "run", "--rm", "--no-healthcheck", "--network", network, *ulimits(),
        *_variables(env or {}), image, *argv,
        check=False,
    )  # fmt: skip


def state(name: str) -> str:
    """A container's state (running, exited, …)."""
    return podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()


def wait_healthy(name: str, timeout: float) -> float:
    """Run the image's own HEALTHCHECK until it passes (podman runs it on demand: no systemd
    timer runs it here); the seconds it took. Raises with the container's log if it never does
    or the container stops."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if state(name) != "running":
            raise RuntimeError(f"{name} stopped before it was healthy:\n{logs(name)}")
        if podman("healthcheck", "run", name, check=False).returncode == 0:
            return time.monotonic() - started
        time.sleep(1)
    raise RuntimeError(f"{name} not healthy after {timeout:.0f} s:\n{logs(name)}")


def logs(name: str, lines: int = 40) -> str:
    """The last lines a container wrote."""
    result = podman("logs", "--tail", str(lines), name, check=False)
    return (result.stdout + result.stderr).strip()


@contextlib.contextmanager
def container(name: str, image: str, env: Mapping[str, str], *command: str) -> Iterator[str]:
    """A container running for the block (`command` in place of the image's), removed after."""
    podman("rm", "--force", name, check=False)
    run_detached(name, image, env, *command)
    try:
        yield name
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("command", choices=["base", "build"])
    parser.add_argument("service", nargs="?", choices=[*sorted(DOCKERFILES), "exporters"])
    args = parser.parse_args()
    ensure_tools()
    base = ensure_base_image()
    print(f"base image: {base}")
    if args.command == "build":
        for service in [args.service] if args.service else list(DOCKERFILES):
            print(f"built {build(service, base)}", flush=True)
        prune()


if __name__ == "__main__":
    main()
