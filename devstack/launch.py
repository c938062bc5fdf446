"""`python -m devstack.launch FILE`: run the program FILE describes (its argv, with exactly its
environment) in a session of its own, and stand in for it before supervisord.

Why a session of its own: the kernel's autogroup scheduler shares CPU fairly between sessions,
not processes, and supervisord starts every program in its one session; the core instances,
the worker and the exporters would share one slice against NGINX and any load generator (the
benchmark measured reads through NGINX 20% slower so). Under systemd each service has its own.

supervisord signals this process; it passes each signal on (SIGTERM as the program's own stop
signal, if FILE names one), and exits as the program did. FILE may name a user to run as. If
it dies (a SIGKILL), the kernel kills the program too (PR_SET_PDEATHSIG), so nothing outlives
its supervisor's record of it.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import signal
import sys

PR_SET_PDEATHSIG = 1
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1)


def _become(program: dict[str, object], parent: int) -> None:
    os.setsid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
    user = program.get("user")
    if isinstance(user, str):  # a server that refuses root (PostgreSQL), as its own user
        account = pwd.getpwnam(user)
        os.initgroups(user, account.pw_gid)
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)
    argv = program["argv"]
    assert isinstance(argv, list)
    os.execvpe(argv[0], argv, program["env"])  # type: ignore[arg-type]  # noqa: S606


def main() -> None:
    """Start the program, pass signals on to it, and exit with its status."""
    with open(sys.argv[1], encoding="utf-8") as file:
        program = json.load(file)
    parent = os.getpid()
    child = os.fork()
    if child == 0:
        _become(program, parent)
    # A program may want another signal for "stop" than supervisord's SIGTERM (PostgreSQL's
    # SIGTERM waits for every client to leave; SIGINT is its fast shutdown).
    stop = signal.Signals[program.get("stop_signal") or "SIGTERM"]

    def forward(number: int, _frame: object) -> None:
        os.kill(child, stop if number == signal.SIGTERM else number)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    _, status = os.waitpid(child, 0)
    sys.exit(os.waitstatus_to_exitcode(status) % 256)


if __name__ == "__main__":
    main()
