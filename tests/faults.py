"""Faults a test injects (the TCP proxy: cut, freeze, slow, restore) and polling until a
check holds."""

from __future__ import annotations

import asyncio
from typing import Any

from devstack.faults import TcpProxy, poll

__all__ = ["TcpProxy", "eventually"]


async def eventually(check: Any, *, within: float = 15.0, every: float = 0.05) -> Any:
    """Poll `check()` (a value or an awaitable) until it is truthy; its last value (a
    TimeoutError if it never came true within `within` seconds)."""
    async with asyncio.timeout(within + 5.0):  # a check that hangs fails too
        result = await poll(check, within, every)
    if not result:
        raise TimeoutError(f"still {result!r} after {within} s")
    return result
