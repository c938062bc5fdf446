"""Each service's own lock (`requirements/<service>.lock`, what its image installs): the chassis
and that service's group alone, hashed, at the versions of `requirements.lock`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", re.MULTILINE)
NAME = re.compile(r"^[A-Za-z0-9_.-]+")
SERVICES = {"core": "core", "payments": "payments", "ai": "ai", "gateway": None}


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> set[tuple[str, str]]:
    return {(normal(name), version) for name, version in PIN.findall(path.read_text())}


def direct(requirements: list[str]) -> set[str]:
    found = set()
    for requirement in requirements:
        match = NAME.match(requirement)
        assert match is not None, requirement
        found.add(normal(match.group(0)))
    return found


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_lock_is_its_group_alone_at_the_main_lock_s_versions(service: str):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    lock = ROOT / "requirements" / f"{service}.lock"
    pinned = pins(lock)
    assert pinned <= pins(ROOT / "requirements.lock"), "run `make lock`"
    names = {name for name, _ in pinned}
    group = SERVICES[service]
    wanted = direct(project["dependencies"]) | direct(extras[group] if group else [])
    assert wanted <= names, f"run `make lock`: {sorted(wanted - names)} missing"
    # no other service's group, no development tool
    others = set().union(*(direct(extras[g]) for g in extras if g not in {group, "dev"}))
    assert not (others - wanted) & names, sorted((others - wanted) & names)
    assert not {"pytest", "locust", "mypy", "ruff"} & names
    # installable with --require-hashes: every pin carries hashes
    text = lock.read_text()
    for name, version in PIN.findall(text):
        after = text[text.index(f"{name}=={version}") :].split("\n", 3)
        assert any("--hash=sha256:" in line for line in after[:3]), f"{name} has no hash"


def test_the_load_tests_lock_adds_to_locust_what_the_load_tests_import():
    lock = ROOT / "requirements" / "loadtests.lock"
    pinned = pins(lock)
    assert pinned <= pins(ROOT / "requirements.lock"), "run `make lock`"
    wanted = direct(
        [
            line
            for line in (ROOT / "loadtests" / "requirements.in").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
    )
    assert wanted <= {name for name, _ in pinned}
    assert lock.read_text().count("--hash=sha256:") >= len(pinned)
