"""HTTP to the stack's own, local URLs."""

from __future__ import annotations

import urllib.error
import urllib.request

# The stack's own URLs are local: no proxy of the caller's environment stands in between.
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(url: str) -> int | None:
    """The status of a GET, or None if nothing answered."""
    try:
        with LOCAL.open(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None
