"""Faults a test injects (the TCP proxy: cut, freeze, slow, restore) and polling until a
check holds."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from devstack.faults import TcpProxy

__all__ = ["TcpProxy", "eventually"]


async def eventually(check: Any, *, within: float = 15.0, every: float = 0.05) -> Any:
    """Poll `check()` (a value or an awaitable) until it is truthy; its last value."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(every)
