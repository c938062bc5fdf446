"""A container's health check: `python -m chassis.healthcheck [PATH]` asks the service in this
container for PATH (default `/health/ready`) on its HTTP_PORT and exits 0 only on a 200 answer
within HEALTHCHECK_TIMEOUT seconds. The standard library only: it runs every few seconds, and
importing the service's stack would cost more than the check."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    """Check readiness once; the exit status the container engine reads."""
    port = os.environ.get("HTTP_PORT", "8001")
    timeout = float(os.environ.get("HEALTHCHECK_TIMEOUT", "2"))
    path = sys.argv[1] if len(sys.argv) > 1 else "/health/ready"
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
