"""Dead letters: `python -m scripts.dlq list|requeue|discard [--queue Q] [--id MESSAGE_ID ...]`.

`list` prints each dead-lettered message (queue, id, type, reason, when it died and how long ago,
body), or only those named by `--id`, and leaves it where it is. `requeue` sends the chosen
messages (all, or those named by `--id`) back to the queue they died in, with their retry count
reset, and removes them from the dead-letter queue only once
the broker has confirmed the copy. `discard` deletes the messages named by `--id` (never all at
once: a poison message is printed, then dropped, one id at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from chassis.messaging import (
    ATTEMPT_HEADER,
    DEAD_AT_HEADER,
    DEFAULT_EXCHANGE,
    QUEUE_HEADER,
    REASON_HEADER,
    Broker,
    dead_letter_queue,
    republished,
)
from devstack import StackSettings

WORK_QUEUES = ("payments.commands", "core.payment-events")


def reason_of(message: AbstractIncomingMessage) -> str:
    """Why the message died: our consumer's reason, else the broker's (`x-death`)."""
    headers = message.headers or {}
    if REASON_HEADER in headers:
        return str(headers[REASON_HEADER])
    deaths: Any = headers.get("x-death") or []
    if deaths:
        return f"broker: {deaths[0].get('reason')} (count {deaths[0].get('count')})"
    return "unknown"


def died_at(message: AbstractIncomingMessage) -> datetime | None:
    """When the message was dead-lettered: by our consumer, else by the broker (`x-death`)."""
    headers = message.headers or {}
    stamp = headers.get(DEAD_AT_HEADER)
    if isinstance(stamp, int | float):
        return datetime.fromtimestamp(stamp, UTC)
    deaths: Any = headers.get("x-death") or []
    when = deaths[0].get("time") if deaths else None
    if isinstance(when, datetime):
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return None


def describe(queue: str, message: AbstractIncomingMessage) -> dict[str, Any]:
    """One dead letter as a JSON-able summary."""
    died = died_at(message)
    age = None if died is None else int((datetime.now(UTC) - died).total_seconds())
    return {
        "queue": queue,
        "message_id": message.message_id,
        "type": message.type,
        "reason": reason_of(message),
        "dead_lettered_at": None if died is None else died.isoformat(timespec="seconds"),
        "age_seconds": age,
        "body": message.body.decode(errors="replace")[:500],
    }


async def take_all(
    channel: aio_pika.abc.AbstractChannel, queue: str
) -> list[AbstractIncomingMessage]:
    """Every message now in the dead-letter queue of `queue`, unacked."""
    dlq = await channel.get_queue(dead_letter_queue(queue), ensure=False)
    taken = []
    while (message := await dlq.get(fail=False, no_ack=False)) is not None:
        taken.append(message)
    return taken


async def run(url: str, command: str, queues: list[str], ids: set[str]) -> int:
    """List or requeue; the number of messages acted on."""
    broker = await Broker.connect(url, name="relais-dlq")
    try:
        channel = await broker.connection.channel()
        count = 0
        for queue in queues:
            for message in await take_all(channel, queue):
                chosen = not ids or message.message_id in ids
                if command == "discard" and chosen:
                    print(json.dumps({"discarded": describe(queue, message)}))
                    await message.ack()
                    count += 1
                    continue
                if command == "list" or not chosen:
                    if command == "list" and chosen:
                        print(json.dumps(describe(queue, message)))
                        count += 1
                    await message.nack(requeue=True)
                    continue
                origin = str((message.headers or {}).get(QUEUE_HEADER, queue))
                copy = republished(
                    message,
                    {},
                    drop=(ATTEMPT_HEADER, REASON_HEADER, QUEUE_HEADER, DEAD_AT_HEADER, "x-death"),
                )
                await broker.publish(DEFAULT_EXCHANGE, origin, copy)
                await message.ack()
                print(json.dumps({"requeued": message.message_id, "queue": origin}))
                count += 1
        await channel.close()
        return count
    finally:
        await broker.close()


def main() -> None:
    """Parse arguments and act on the dead-letter queues."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["list", "requeue", "discard"])
    parser.add_argument("--queue", action="append", help=f"work queue (default: {WORK_QUEUES})")
    parser.add_argument("--id", action="append", default=[], help="only this message id")
    parser.add_argument("--url", default=os.environ.get("AMQP_URL") or StackSettings().amqp_url)
    args = parser.parse_args()
    if args.command == "discard" and not args.id:
        parser.error("discard needs the --id of each message to drop")
    count = asyncio.run(run(args.url, args.command, args.queue or list(WORK_QUEUES), set(args.id)))
    done = {"list": "listed", "requeue": "requeued", "discard": "discarded"}[args.command]
    print(f"{count} message(s) {done}", file=sys.stderr)


if __name__ == "__main__":
    main()
