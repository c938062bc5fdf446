"""`make audit`: pip-audit over the lock file, with a verdict that says what was checked.

pip-audit asks PyPI's JSON API for the advisories of each pinned release. A release with a known
vulnerability fails the audit. Where that API does not answer for a release (a mirror that
serves only the package index, say), pip-audit skips it: the audit says how many releases went
unchecked, and fails on it only with AUDIT_STRICT=1, since a registry mirror that cannot be
asked is not a vulnerability of ours.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """What an audit found: vulnerable releases, releases checked, releases left unchecked."""

    vulnerable: list[str]
    checked: int
    unchecked: list[str]

    def passed(self, *, strict: bool) -> bool:
        """No known vulnerability (and, if `strict`, nothing left unchecked)."""
        return not self.vulnerable and not (strict and self.unchecked)


def verdict(report: dict[str, Any]) -> Verdict:
    """The verdict of a pip-audit JSON report."""
    vulnerable, checked, unchecked = [], 0, []
    for dependency in report.get("dependencies", []):
        release = f"{dependency['name']}=={dependency.get('version', '?')}"
        if "skip_reason" in dependency:
            unchecked.append(f"{release}: {dependency['skip_reason']}")
            continue
        checked += 1
        for vuln in dependency.get("vulns", []):
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
            vulnerable.append(f"{release}: {vuln['id']} (fixed in {fixed})")
    return Verdict(vulnerable, checked, unchecked)


def main() -> None:
    """Audit the lock file given as the only argument; exit non-zero on a finding."""
    lock = Path(sys.argv[1])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "--requirement",
            str(lock),
            "--require-hashes",
            "--disable-pip",
            "--format",
            "json",
            "--progress-spinner",
            "off",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        sys.exit(f"pip-audit failed:\n{result.stderr}")
    found = verdict(report)
    strict = os.environ.get("AUDIT_STRICT") == "1"
    for line in found.vulnerable:
        print(f"VULNERABLE {line}")
    print(f"pip-audit: {found.checked} releases checked, {len(found.vulnerable)} vulnerable")
    if found.unchecked:
        print(
            f"NOT CHECKED: PyPI's advisories did not answer for {len(found.unchecked)} "
            f"releases of {lock} (first: {found.unchecked[0]})"
            + ("" if strict else "; AUDIT_STRICT=1 fails on this")
        )
    if not found.passed(strict=strict):
        sys.exit(1)


if __name__ == "__main__":
    main()
