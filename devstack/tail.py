"""The last lines of a file, read backwards from its end: a 500 MB log costs a few blocks."""

from __future__ import annotations

import os
from pathlib import Path

BLOCK = 64 * 1024


def tail_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of `path` (decoded, undecodable bytes replaced), oldest first."""
    if count <= 0:
        return []
    with path.open("rb") as file:
        end = file.seek(0, os.SEEK_END)
        data, position = b"", end
        # One newline more than the lines wanted: the first line read may be cut.
        while position > 0 and data.count(b"\n") <= count:
            step = min(BLOCK, position)
            position -= step
            file.seek(position)
            data = file.read(step) + data
    lines = data.decode(errors="replace").splitlines()
    return lines[-count:]
