"""`make audit`'s verdict on pip-audit's report."""

from __future__ import annotations

from scripts.audit import verdict

REPORT = {
    "dependencies": [
        {
            "name": "pyjwt",
            "version": "2.10.0",
            "vulns": [{"id": "GHSA-75c5-xw7c-p5pm", "fix_versions": ["2.10.1"]}],
        },
        {"name": "aiohttp", "version": "3.14.5", "vulns": []},
        {"name": "six", "skip_reason": "Dependency not found on PyPI and could not be audited"},
    ]
}


def test_a_known_vulnerability_fails_the_audit():
    found = verdict(REPORT)
    assert found.vulnerable == ["pyjwt==2.10.0: GHSA-75c5-xw7c-p5pm (fixed in 2.10.1)"]
    assert (found.checked, len(found.unchecked)) == (2, 1)
    assert not found.passed(strict=False)


def test_releases_left_unchecked_fail_only_a_strict_audit():
    clean = {"dependencies": REPORT["dependencies"][1:]}
    found = verdict(clean)
    assert found.passed(strict=False)
    assert not found.passed(strict=True)
    assert verdict({"dependencies": clean["dependencies"][:1]}).passed(strict=True)
