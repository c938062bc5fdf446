"""The stack's long-running processes, under a supervisord of their own."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from devstack.settings import ROOT, STOP_TIMEOUT, StackSettings
from devstack.tail import tail_lines


def prepare_dirs(config: StackSettings) -> None:
    """Create the state folders (private to their owner) and the runtime folder."""
    for directory in (config.state_dir, config.run_dir, config.log_dir):
        directory.mkdir(parents=True, exist_ok=True)
    prepare_runtime_dir(config)


def nginx_group(config: StackSettings) -> int:
    """The group NGINX' workers run in: the worker user's under root, else our own."""
    if os.geteuid() != 0:
        return os.getegid()
    return pwd.getpwnam(config.nginx_user).pw_gid


def prepare_runtime_dir(config: StackSettings) -> Path:
    """Create the runtime folder: its owner and NGINX' worker group may enter it, nobody else
    (sockets made in it inherit that group, setgid, and are 0660)."""
    runtime = config.runtime_dir
    runtime.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
    runtime.mkdir(mode=0o700, exist_ok=True)
    for folder in (runtime.parent, runtime):
        info = folder.lstat()
        if stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid():
            raise SystemExit(f"{folder} is not a folder of this user's: refusing to use it")
    os.chown(runtime, -1, nginx_group(config))
    runtime.chmod(0o2750)
    return runtime


def _pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


# What supervisord does with every program: restart it whatever way it ends (after 1 s, 2 s, …
# while it keeps failing within `startsecs`), stop it with SIGTERM and a grace, and rotate its log.
PROGRAM = """[program:{name}]
command={command}
directory={directory}
autostart=true
autorestart=true
startsecs=1
startretries=10
stopsignal=TERM
stopwaitsecs={grace}
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={log}
stdout_logfile_maxbytes=20MB
stdout_logfile_backups=3
"""
SUPERVISORD = """[unix_http_server]
file={socket}
chmod=0700

[supervisord]
logfile={log_dir}/supervisord.log
logfile_maxbytes=10MB
logfile_backups=3
pidfile={run_dir}/supervisord.pid
directory={directory}
childlogdir={log_dir}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{socket}

[include]
files = {programs}/*.conf
"""


def supervisor_conf(config: StackSettings) -> Path:
    """supervisord's config for this stack (its programs are files in `run/programs`)."""
    return config.run_dir / "supervisord.conf"


def supervisor_socket(config: StackSettings) -> Path:
    """supervisord's control socket: in the runtime folder, where a path stays short."""
    return config.runtime_dir / "supervisor.sock"


def _conf_value(value: str) -> str:
    return value.replace("%", "%%")  # supervisord expands %(name)s in its values


def supervisorctl(config: StackSettings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run supervisorctl against this stack's supervisord."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "supervisor.supervisorctl",
            "-c",
            str(supervisor_conf(config)),
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=STOP_TIMEOUT * 4,
    )


def supervisor_running(config: StackSettings) -> bool:
    """Whether this stack's supervisord answers on its socket."""
    if not supervisor_socket(config).exists() or not supervisor_conf(config).exists():
        return False
    return supervisorctl(config, "pid").stdout.strip().isdigit()


def ensure_supervisor(config: StackSettings) -> None:
    """Start this stack's supervisord unless it runs."""
    programs = config.run_dir / "programs"
    programs.mkdir(parents=True, exist_ok=True)
    supervisor_conf(config).write_text(
        SUPERVISORD.format(
            socket=_conf_value(str(supervisor_socket(config))),
            log_dir=_conf_value(str(config.log_dir)),
            run_dir=_conf_value(str(config.run_dir)),
            directory=_conf_value(str(ROOT)),
            programs=_conf_value(str(programs)),
        )
    )
    if supervisor_running(config):
        return
    # A new supervisord starts every program it finds: the previous stack's, with the settings
    # that stack had (another database, other broker users), would run before this one's.
    for stale in programs.iterdir():
        stale.unlink()
    supervisor_socket(config).unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(supervisor_conf(config))],
        cwd=ROOT,
        check=True,
    )
    deadline = time.monotonic() + STOP_TIMEOUT
    while not supervisor_running(config):
        if time.monotonic() > deadline:
            raise SystemExit(
                f"supervisord did not start: read {config.log_dir / 'supervisord.log'}"
            )
        time.sleep(0.1)


def start_process(
    name: str,
    argv: list[str],
    env: dict[str, str],
    config: StackSettings,
    *,
    user: str | None = None,
    stop_signal: str | None = None,
) -> bool:
    """Run `argv` with exactly `env` as the program `name` of this stack's supervisord (started
    if it is not), which restarts it whenever it ends; True if it was not running. A running
    program is left as it is, with the command and environment it was started with (a change
    is `make restart`). `user`: run as that user (supervisord runs as root); `stop_signal`: what
    stops it, if not SIGTERM."""
    ensure_supervisor(config)
    if program_pids(config).get(name):
        return False
    launch = config.run_dir / "programs" / f"{name}.json"
    described = {"argv": argv, "env": env, "user": user, "stop_signal": stop_signal}
    _write_private(launch, json.dumps(described).encode())
    program = PROGRAM.format(
        name=name,
        command=_conf_value(shlex.join([sys.executable, "-m", "devstack.launch", str(launch)])),
        directory=_conf_value(str(ROOT)),
        grace=int(STOP_TIMEOUT),
        log=_conf_value(str(config.log_dir / f"{name}.log")),
    )
    conf = config.run_dir / "programs" / f"{name}.conf"
    if not conf.exists() or conf.read_text() != program:
        conf.write_text(program)
    supervisorctl(config, "update", name)  # adds a new program, restarts a changed one
    supervisorctl(config, "start", name)  # a no-op if the update started it
    return True


def _write_private(path: Path, data: bytes) -> None:
    # The environment holds the services' secrets' paths and passwords: owner only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def program_pids(config: StackSettings) -> dict[str, int]:
    """The process id of each running program of this stack's supervisord (the program's
    own, not that of `devstack.launch` standing in for it)."""
    if not supervisor_running(config):
        return {}
    found = {}
    for line in supervisorctl(config, "status").stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "RUNNING" and parts[2] == "pid":
            found[parts[0]] = _launched(int(parts[3].rstrip(",")))
    return found


def _launched(launcher: int) -> int:
    # `devstack.launch` has one child, the program (a launcher only just started may not have
    # forked it yet: look again for a moment).
    deadline = time.monotonic() + 1.0
    while True:
        try:
            children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
        except OSError:
            return launcher
        if len(children) == 1 or time.monotonic() > deadline:
            return int(children[0]) if len(children) == 1 else launcher
        time.sleep(0.05)


def stop_supervisor(config: StackSettings) -> list[str]:
    """Stop every program (each with its grace), then supervisord; the programs that ran."""
    if not supervisor_running(config):
        return []
    names = sorted(program_pids(config))
    supervisorctl(config, "stop", "all")
    pid = supervisorctl(config, "pid").stdout.strip()
    supervisorctl(config, "shutdown")
    deadline = time.monotonic() + STOP_TIMEOUT
    while pid.isdigit() and time.monotonic() < deadline:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    supervisor_socket(config).unlink(missing_ok=True)
    return names


def pids(config: StackSettings) -> dict[str, int]:
    """The process id of every process of the stack: NGINX' master and each program."""
    found = program_pids(config)
    nginx = _pid(config.run_dir / "nginx" / "nginx.pid")
    if nginx:
        found["nginx"] = nginx
    return found


def stop_pid_file(pid_file: Path, sig: signal.Signals = signal.SIGTERM) -> str | None:
    """Signal the process a PID file names and wait for it to exit; its name if one ran."""
    pid = _pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return None
    os.kill(pid, sig)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and _pid(pid_file):
        time.sleep(0.1)
    if _pid(pid_file):
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return pid_file.stem


def log_files(config: StackSettings, service: str | None = None) -> list[Path]:
    """The stack's log files, or those of `service` (`core` names every core instance's,
    `nginx` NGINX' access and error logs, `core-1` one instance's)."""
    files = sorted(config.log_dir.glob("*.log")) if config.log_dir.exists() else []
    if service:
        # `core` is every instance's (`core-1`…), `nginx` its access and error logs; a program
        # of another name (`nginx-exporter`) is named whole.
        own = re.compile(rf"{re.escape(service)}(-[0-9]+|-access|-error)?")
        files = [path for path in files if own.fullmatch(path.stem)]
    return files


def follow_logs(config: StackSettings, service: str | None = None) -> None:
    """Follow the log files (every one, or `service`'s) until interrupted."""
    with contextlib.suppress(KeyboardInterrupt):
        subprocess.run(["tail", "-n", "20", "-F", *map(str, log_files(config, service))])


def show_logs(config: StackSettings, lines: int = 50, service: str | None = None) -> bool:
    """Print the last lines of each log file (of `service`), read from the end of the file;
    False if no file matched."""
    files = log_files(config, service)
    for path in files:
        print(f"==> {path} <==")
        print("\n".join(tail_lines(path, lines)))
    return bool(files)
