"""The e-mail port and its two adapters: SMTP (aiosmtplib), and the development outbox, a
table that `make mail` lists (nothing leaves the machine).

A message that cannot be sent is logged, and the action that sent it stands: the
account's owner asks for another (`/api/auth/verify-email/resend`, a new reset).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
import asyncpg

from chassis.data import execute_counted
from services.core.settings import CoreSettings

log = logging.getLogger("relais.mail")


@dataclass(frozen=True)
class Mail:
    """A plain-text message to one recipient."""

    to: str
    subject: str
    text: str


class Mailer(Protocol):
    """Sends a message (raises if it could not be handed over)."""

    async def send(self, mail: Mail) -> None: ...


class OutboxMailer:
    """Development: the message is written to the `mail_outbox` table, for `make mail`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def send(self, mail: Mail) -> None:
        """Keep the message in the outbox."""
        await self._pool.execute(
            "INSERT INTO mail_outbox (recipient, subject, body) VALUES ($1, $2, $3)",
            mail.to,
            mail.subject,
            mail.text,
        )


class SmtpMailer:
    """Hands the message to an SMTP server (plain, STARTTLS or implicit TLS, with or without
    authentication)."""

    def __init__(self, settings: CoreSettings) -> None:
        self._settings = settings

    async def send(self, mail: Mail) -> None:
        """Send the message through the configured server."""
        settings = self._settings
        message = EmailMessage()
        message["From"] = settings.mail_from
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message.set_content(mail.text)
        password = settings.smtp_password.get_secret_value()
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username or None,
            password=password or None,
            use_tls=settings.smtp_security == "tls",
            start_tls=settings.smtp_security == "starttls",
            timeout=settings.smtp_timeout,
        )


async def send_or_log(mailer: Mailer, mail: Mail) -> bool:
    """Send `mail`; False (and the failure logged) if it could not be handed over."""
    try:
        await mailer.send(mail)
    except (OSError, aiosmtplib.SMTPException, asyncpg.PostgresError) as exc:
        log.error("could not send %r to %s: %r", mail.subject, mail.to, exc)
        return False
    return True


async def purge_outbox(pool: asyncpg.Pool, *, retention_days: int) -> int:
    """Forget the development outbox's messages older than `retention_days`: how many."""
    return await execute_counted(
        pool,
        "DELETE FROM mail_outbox WHERE created_at < now() - make_interval(days => $1)",
        retention_days,
    )


def configured_mailer(settings: CoreSettings, pool: asyncpg.Pool) -> Mailer:
    """The adapter the settings name."""
    return SmtpMailer(settings) if settings.mail_backend == "smtp" else OutboxMailer(pool)
