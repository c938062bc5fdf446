"""`make mail`: the development outbox, newest first (what core's `outbox` e-mail adapter kept
instead of sending: verification and password reset links); and, for the tools and tests that
drive a stack, the token a message carries and the verification it opens."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import asyncpg

from devstack.settings import StackSettings

VERIFICATION_SUBJECT = "Confirm your e-mail address"
RESET_SUBJECT = "Reset your Relais password"
# A JWT (a link's token) in a message's text.
TOKEN = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


async def mailed_token(db: Any, email: str, subject: str) -> str | None:
    """The token of the newest message of `subject` to `email` in the outbox (`db`: a
    connection or pool on core's schema); None if there is none."""
    body = await db.fetchval(
        """SELECT body FROM mail_outbox WHERE lower(recipient) = lower($1) AND subject = $2
           ORDER BY id DESC LIMIT 1""",
        email,
        subject,
    )
    found = TOKEN.findall(body or "")
    return str(found[-1]) if found else None


async def verify_mailbox(
    http: aiohttp.ClientSession, base: str, database_url: str, email: str
) -> None:
    """Open the verification link the outbox holds for `email`, through the API at `base`."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "core"})
    try:
        token = await mailed_token(conn, email, VERIFICATION_SUBJECT)
    finally:
        await conn.close()
    if token is None:
        raise RuntimeError(f"no verification message to {email} in the outbox")
    async with http.post(f"{base}/api/auth/verify-email", json={"token": token}) as response:
        if response.status != 200:
            raise RuntimeError(f"verifying {email}: {response.status} {await response.text()}")


async def _messages(config: StackSettings, to: str | None, last: int) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(config.database_url, server_settings={"search_path": "core"})
    try:
        return await conn.fetch(
            """SELECT id, created_at, recipient, subject, body FROM mail_outbox
               WHERE $1::text IS NULL OR lower(recipient) = lower($1)
               ORDER BY id DESC LIMIT $2""",
            to,
            last,
        )
    finally:
        await conn.close()


def show_mail(config: StackSettings, to: str | None, last: int) -> int:
    """Print the last `last` messages (to `to` only, if given); 1 if there are none."""
    messages = asyncio.run(_messages(config, to, last))
    for message in messages:
        print(f"#{message['id']}  {message['created_at']:%Y-%m-%d %H:%M:%S %Z}")
        print(f"To: {message['recipient']}\nSubject: {message['subject']}\n")
        print(message["body"].rstrip())
        print("-" * 72)
    if not messages:
        print(f"no message{f' to {to}' if to else ''} in the outbox")
    return 0 if messages else 1
