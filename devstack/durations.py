"""Prometheus durations, and the game day's clock: rules and Alertmanager timers divided by
`ALERT_TIME_SCALE` (60: an hour's window lasts a minute), the rules otherwise as they ship."""

from __future__ import annotations

import re

# A Prometheus duration of one unit, and where rules hold durations: range selectors and `for:`.
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
RANGE = re.compile(r"\[(\d+(?:ms|[smhd]))\]")
FOR = re.compile(r"^(\s+for: )(\d+(?:ms|[smhd]))$", re.MULTILINE)


def seconds_of(duration: str) -> float:
    """A Prometheus duration of one unit (`15s`, `1m`, `3d`) in seconds."""
    unit = next(unit for unit in sorted(UNITS, key=len, reverse=True) if duration.endswith(unit))
    return float(duration.removesuffix(unit)) * UNITS[unit]


def scaled(duration: str, scale: int) -> str:
    """`duration` divided by `scale`, in whole milliseconds (`1h` / 60 = `60s`)."""
    if scale == 1:
        return duration
    millis = max(1, round(seconds_of(duration) * 1000 / scale))
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def scale_rules(text: str, scale: int) -> str:
    """Rules whose range windows and `for:` durations are divided by `scale`, all else as is:
    a game day runs the rules that ship on a faster clock."""
    text = RANGE.sub(lambda m: f"[{scaled(m[1], scale)}]", text)
    return FOR.sub(lambda m: m[1] + scaled(m[2], scale), text)
