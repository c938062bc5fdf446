"""A native stack of a test's own: `make up` from a copy of this checkout in a private folder,
on free ports, with its own database, vhost and key prefix, torn down afterwards."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from devstack import StackSettings
from devstack.scratch import INHERITED, remove_scratch, scratch_env

ROOT = Path(__file__).resolve().parent.parent
# What a copy of the checkout leaves out: history, the virtualenv, state and caches.
UNCOPIED = (".git", ".venv", "var", "__pycache__", "*_cache", "*.egg-info")


@contextlib.contextmanager
def native_stack(settings: dict[str, str]) -> Iterator[dict[str, Any]]:
    """`make up` with `settings` over the stack's own names and ports; `make down` after."""
    run = uuid.uuid4().hex[:8]
    # `make up` from a copy of this checkout in a private folder (0700, as a home folder is),
    # with the default state folder inside it; the copy shares this checkout's virtualenv.
    home = Path(tempfile.mkdtemp(prefix="relais-home-"))
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    checkout = home / "relais"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(*UNCOPIED))
    (checkout / ".venv").symlink_to(ROOT / ".venv")
    env = {
        **os.environ,
        **scratch_env(f"relais_e2e_{run}"),
        **settings,
    }
    for key in INHERITED & set(env):
        del env[key]

    def make(
        *targets: str, check: bool = True, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run make in the stack's checkout; `extra` adds to (or overrides) its environment."""
        return subprocess.run(
            ["make", "--no-print-directory", *targets],
            cwd=checkout,
            env={**env, **(extra or {})},
            text=True,
            capture_output=True,
            timeout=300,
            check=check,
        )

    # The stack as `make` sees it: its environment, and the default state folder of the copy.
    with mock.patch.dict(os.environ, env, clear=True):
        config = StackSettings(state_dir=checkout / "var")
    try:
        result = make("up", check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        yield {
            "env": env,
            "make": make,
            "checkout": checkout,
            "config": config,
            "base": f"http://127.0.0.1:{env['NGINX_PORT']}",
            "tls": f"https://127.0.0.1:{env['NGINX_TLS_PORT']}",
            "up_output": result.stdout,
        }
    finally:
        make("down", check=False)
        remove_scratch(config)
        shutil.rmtree(home, ignore_errors=True)


def mailed_link(stack: dict[str, Any], email: str) -> str:
    """The verification link `make mail` shows for `email`, at the stack's NGINX."""
    listed = stack["make"]("mail", f"TO={email}").stdout
    links = re.findall(r"http://\S+/api/auth/verify-email\?token=\S+", listed)
    assert links, listed
    return str(links[0]).replace(stack["config"].public_url, stack["base"])
