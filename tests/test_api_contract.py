"""Schemathesis against the stack's own OpenAPI document, through NGINX.

Every operation is tested with the document's examples, its coverage scenarios, fuzzing and the
stateful links between operations, and every check is on: the run fails on any 5xx, any answer
the document does not describe (status, content type, headers, body), any request the document
allows that the API refuses or the reverse, any undeclared method answered otherwise than 405
with `Allow`, and any protected operation that answers without credentials. The seed is fixed
(SCHEMATHESIS_SEED changes it) so that a run can be repeated.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.stacks import mailed_link, native_stack

pytestmark = pytest.mark.e2e
CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261203")
EXAMPLES = os.environ.get("SCHEMATHESIS_EXAMPLES", "40")


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, Any]]:
    """A stack whose per-address and per-account limits a fuzzer from one address, as one
    account, does not exhaust."""
    with native_stack(
        {
            "NGINX_RATE_LIMIT": "100000",
            "NGINX_RATE_BURST": "100000",
            "NGINX_CONN_LIMIT": "1000",
            "WRITE_RATE_LIMIT": "10000000/minute",
            "AI_RATE_LIMIT": "10000000/minute",
            "AI_SEARCH_RATE_LIMIT": "10000000/minute",
            "TWO_FACTOR_ATTEMPT_LIMIT": "10000000/minute",
            "PASSWORD_RESET_LIMIT": "10000000/minute",
        }
    ) as running:
        yield running


def signed_in(stack: dict[str, Any], *, admin: bool) -> str:
    """An access token of a new account (an admin's if `admin`)."""
    base, email = stack["base"], f"fuzz-{uuid.uuid4().hex[:8]}@example.com"
    credentials = {"email": email, "password": "fuzzing password"}
    registered = requests.post(
        f"{base}/api/auth/register", json={**credentials, "name": "Fuzz"}, timeout=10
    )
    assert registered.status_code == 201, registered.text
    if not admin:
        return str(registered.json()["access_token"])
    verified = requests.get(mailed_link(stack, email), timeout=10)
    assert verified.status_code == 200, verified.text
    made = stack["make"](
        "admin", f"EMAIL={email}", "PROMOTE=1", extra={"ADMIN_PASSWORD": "fuzzing password"}
    )
    assert "admin ready" in made.stdout
    logged_in = requests.post(f"{base}/api/auth/login", json=credentials, timeout=10)
    return str(logged_in.json()["access_token"])


def schemathesis(stack: dict[str, Any], token: str, *options: str) -> str:
    """Run Schemathesis against the stack as `token`'s holder; its report if anything failed."""
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("st")),
            "--config-file",
            str(CONFIG),
            "--no-color",
            "run",
            f"{stack['base']}/api/openapi.json",
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {token}",
            "--seed",
            SEED,
            "--max-examples",
            EXAMPLES,
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return "" if result.returncode == 0 else result.stdout[-30_000:] + result.stderr[-5_000:]


def test_every_operation_keeps_its_document(stack):
    # as an admin, so that every operation is reached; logout would end the run's session
    failures = schemathesis(stack, signed_in(stack, admin=True), "--exclude-operation-id", "logout")
    assert not failures, failures


def test_logout_keeps_its_document(stack):
    # alone (it revokes the token it is called with), so no link leads from it to another
    failures = schemathesis(
        stack,
        signed_in(stack, admin=False),
        "--include-operation-id",
        "logout",
        "--phases",
        "examples,coverage,fuzzing",
    )
    assert not failures, failures
