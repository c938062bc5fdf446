"""The catalogue: each fault, how it is injected and undone, the alerts it must raise, what must
hold while it lasts and after, and the commands that show its cause (the runbooks quote them)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aio_pika

from devstack.settings import ROOT
from scripts.gameday.stack import ANALYSTS, GameDayStack, until

# How many payments the payments worker's outage leaves waiting: past QueueBacklog's 1000.
BACKLOG = 1100


@dataclass
class Expect:
    """An alert the fault must fire (with at least these labels)."""

    alert: str
    labels: dict[str, str] = field(default_factory=dict)
    # fires once the fault is undone (payments settled late once the worker is back)
    after_restore: bool = False


@dataclass
class Evidence:
    """A command an SRE runs during the fault, and what in its output shows the cause."""

    command: str  # as the runbook writes it: `make status`, `make dlq`, or a PromQL query
    shows: str  # a line of the output must contain this

    def argv(self) -> list[str] | None:
        """The command as this game day runs it (None: a PromQL query)."""
        words = self.command.split()
        if words[:2] == ["make", "dlq"]:
            return [sys.executable, "-m", "scripts.dlq", "list"]
        if words[:1] == ["make"]:
            extra = [f"--{w.split('=')[0].lower()}={w.split('=')[1]}" for w in words[2:]]
            return [sys.executable, "-m", "devstack", words[1], *extra]
        return None


@dataclass
class Check:
    """Something that must hold during or after the fault."""

    what: str
    ok: bool
    detail: str = ""


Step = Callable[[GameDayStack], Awaitable[None]]
Checks = Callable[[GameDayStack, float, float], Awaitable[list[Check]]]


async def _no_checks(stack: GameDayStack, start: float, end: float) -> list[Check]:
    return []


@dataclass
class Fault:
    """One fault of the catalogue."""

    name: str
    what: str
    inject: Step
    restore: Step
    expect: list[Expect]
    runbook: str
    evidence: list[Evidence] = field(default_factory=list)
    during: Checks = _no_checks
    after: Checks = _no_checks
    fire_within: float = 120.0


# --- checks -------------------------------------------------------------------------------------


# A request an instance was serving when it was killed may fail: NGINX does not send a POST
# it already passed on to another instance (it may have been acted on). Sent later, none may.
IN_FLIGHT_AT_KILL = 1.0


async def nothing_failed(stack: GameDayStack, start: float, end: float) -> list[Check]:
    """No customer's request sent after the kill failed (NGINX took them to the instances
    left)."""
    assert stack.trickle is not None
    calls = stack.trickle.between(start + IN_FLIGHT_AT_KILL, end)
    failed = [c for c in calls if c.status == 0 or c.status >= 500]
    detail = ", ".join(f"{c.what} {c.status} at +{c.at - start:.1f} s" for c in failed)
    return [
        Check(
            f"none of {len(calls)} requests sent after the kill failed",
            not failed,
            f"{len(failed)} failed" + (f": {detail}" if detail else ""),
        )
    ]


async def unavailable_with_retry_after(
    stack: GameDayStack, start: float, end: float
) -> list[Check]:
    """What failed was a 503 with `Retry-After`, never a 500 or a dropped connection."""
    assert stack.trickle is not None
    calls = stack.trickle.between(start, end)
    failed = [c for c in calls if c.status == 0 or c.status >= 500]
    proper = [c for c in failed if c.status == 503 and c.retry_after]
    statuses = sorted({c.status for c in failed})
    kinds = sorted({c.what for c in calls})
    by_kind = ", ".join(
        f"{kind} {sum(c.what == kind for c in failed)}/{sum(c.what == kind for c in calls)}"
        for kind in kinds
    )
    return [
        Check(
            "requests failed while it lasted",
            bool(failed),
            f"{len(failed)} of {len(calls)}: {by_kind}",
        ),
        Check(
            "each failure a 503 with Retry-After",
            len(proper) == len(failed),
            f"{len(proper)} of {len(failed)} (statuses {statuses})",
        ),
        await counted_by_core(stack, start, end, len(failed)),
    ]


async def counted_by_core(stack: GameDayStack, start: float, end: float, seen: int) -> Check:
    """Core counted the errors the customers saw: its availability SLI is not blind to them
    (NGINX answering 503s itself, with every instance out of rotation, would be)."""
    await asyncio.sleep(3.0)  # the last scrape of the window
    window = max(2, round(time.time() - start))
    result = await stack.query(
        "sum(increase(relais_http_requests_total"
        f'{{service="core",status="5xx",route!~"/health/.*"}}[{window}s]))'
    )
    counted = float(result[0]["value"][1]) if result else 0.0
    return Check(
        "core's metrics counted the failures customers saw (its SLI sees the outage)",
        counted >= 0.8 * seen,
        f"{counted:.0f} counted, {seen} seen",
    )


async def books_balance(stack: GameDayStack, start: float, end: float) -> list[Check]:
    """Every payment accepted since the fault settled once, and the books hold."""
    waiting = await stack.settle_all(since=start)
    assert stack.trickle is not None
    accepted = sum(1 for at in stack.trickle.payments.values() if at >= start)
    wrong = await stack.invariants()
    return [
        Check(
            f"all {accepted} payments accepted since the fault settled",
            not waiting,
            f"{len(waiting)} still processing",
        ),
        Check("orders, payments and the ledger agree", not wrong, "; ".join(wrong)),
    ]


def both(*checks: Checks) -> Checks:
    """Several checks as one."""

    async def run(stack: GameDayStack, start: float, end: float) -> list[Check]:
        return [found for check in checks for found in await check(stack, start, end)]

    return run


# --- faults -------------------------------------------------------------------------------------


async def kill_core(stack: GameDayStack) -> None:
    await stack.kill("core-2")


async def start_core(stack: GameDayStack) -> None:
    await stack.start("core-2")


async def stop_payments(stack: GameDayStack) -> None:
    await stack.ctl("stop", "payments-1")
    await burst(stack, BACKLOG)


async def burst(stack: GameDayStack, count: int) -> None:
    """`count` orders and payments at once, from every customer (the worker is away: each
    payment waits in its queue)."""
    assert stack.trickle is not None
    trickle = stack.trickle
    slots = asyncio.Semaphore(16)

    async def checkout(number: int) -> None:
        async with slots:
            customer = number % len(trickle.customers)
            await trickle.checkout(stack.http, customer, trickle.products[0])

    await asyncio.gather(*(checkout(number) for number in range(count)))


async def start_payments(stack: GameDayStack) -> None:
    await stack.start("payments-1")


def cut(name: str) -> Step:
    async def step(stack: GameDayStack) -> None:
        await stack.proxies[name].cut()

    return step


def reopen(name: str) -> Step:
    async def step(stack: GameDayStack) -> None:
        await stack.proxies[name].restore()
        await stack.ready(within=120.0)

    return step


POISON_ID = "gameday-poison"


async def publish_poison(stack: GameDayStack) -> None:
    """A message no contract describes, on the payments worker's command queue."""
    config = stack.config
    url = config.amqp_url.replace(config.rabbitmq_host, "127.0.0.1:5672")
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        message = aio_pika.Message(
            b'{"surprise": true}',
            message_id=POISON_ID,
            type="payments.unheard-of.v1",
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await channel.default_exchange.publish(message, routing_key="payments.commands")


async def discard_poison(stack: GameDayStack) -> None:
    """`make dlq DISCARD=1 ID=…`: the operator drops the message, which can never succeed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scripts.dlq",
        "discard",
        "--id",
        POISON_ID,
        cwd=ROOT,
        env={**stack.env, "AMQP_URL": stack.config.amqp_url},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    if b"1 message(s) discarded" not in err:
        raise RuntimeError(f"the poison message was not discarded: {err.decode()}")


def outage(seconds: float) -> Step:
    async def step(stack: GameDayStack) -> None:
        done = await stack.devstack("sandbox-outage", "--seconds", str(seconds))
        if done.returncode != 0:
            raise RuntimeError(done.stderr)

    return step


async def slow_postgres(stack: GameDayStack) -> None:
    """150 ms each way on every PostgreSQL connection; once the latency page fires, a core
    instance dies as well: its InstanceDown must silence the page it explains."""
    stack.proxies["postgres"].delay = 0.15
    await stack.wait_for("ApiLatencyBudgetBurn", {"service": "core"}, within=150.0)
    await stack.kill("core-2")


async def fast_postgres(stack: GameDayStack) -> None:
    stack.proxies["postgres"].delay = 0.0
    await stack.start("core-2")


async def latency_page_inhibited(stack: GameDayStack, start: float, end: float) -> list[Check]:
    """The latency page was silenced by the down instance of its service."""
    await stack.wait_for("InstanceDown", {"service": "core"}, within=30.0)
    await asyncio.sleep(5.0)  # Alertmanager hears of both, then applies its inhibition
    episode = stack.watch.first("ApiLatencyBudgetBurn", {"service": "core"}, start)
    inhibitors = episode.inhibited_by if episode else set()
    return [
        Check(
            "InstanceDown{service=core} inhibits ApiLatencyBudgetBurn{service=core}",
            "InstanceDown" in inhibitors,
            f"inhibited by {sorted(inhibitors) or 'nothing'}",
        )
    ]


def stop(program: str) -> Step:
    async def step(stack: GameDayStack) -> None:
        await stack.ctl("stop", program)

    return step


def start(program: str) -> Step:
    async def step(stack: GameDayStack) -> None:
        await stack.start(program)

    return step


async def fast_refusals(stack: GameDayStack, start: float, end: float) -> list[Check]:
    """With no worker, an analysis is refused at once (503), not after its deadline (504)."""
    assert stack.trickle is not None
    # the first second: requests already with the worker when it stopped
    calls = [c for c in stack.trickle.between(start + 1.0, end) if c.what == "analyze"]
    refused = [c for c in calls if c.status == 503 and c.retry_after]
    return [
        Check(
            "every analysis answered 503 with Retry-After",
            bool(calls) and len(refused) == len(calls),
            f"{len(refused)} of {len(calls)} (statuses {sorted({c.status for c in calls})})",
        )
    ]


async def stall_ai(stack: GameDayStack) -> None:
    """The worker stalls (SIGSTOP, SIGCONT: a starved or swapping host) 3 s of every 3.5 for
    40 s, past the game day's 2 s analysis deadline: requests wait, and those it took before a
    stall are past their deadline when it wakes."""
    pid = await stack.pid("ai-1")
    stack.trickle_extra = asyncio.create_task(analyses(stack, per_second=4.0))
    for _ in range(12):
        os_signal(pid, signal.SIGSTOP)
        await asyncio.sleep(3.0)
        os_signal(pid, signal.SIGCONT)
        await asyncio.sleep(0.5)


def os_signal(pid: int, sig: signal.Signals) -> None:
    """Signal a process that may be gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


async def analyses(stack: GameDayStack, per_second: float) -> None:
    """More analyses than the trickle's, until cancelled: from a customer who makes none in the
    trickle (past its AI limit, it gets 429s for a minute after)."""
    assert stack.trickle is not None
    trickle = stack.trickle
    pending: set[asyncio.Task[object]] = set()
    while True:
        body = {"text": "A stalled worker keeps its callers waiting."}
        task = asyncio.create_task(
            trickle.call(
                stack.http,
                "analyze",
                "POST",
                "/api/ai/text/analyze",
                trickle.customers[ANALYSTS],
                json=body,
            )
        )
        pending.add(task)
        task.add_done_callback(pending.discard)
        await asyncio.sleep(1.0 / per_second)


async def unstall_ai(stack: GameDayStack) -> None:
    if stack.trickle_extra is not None:
        stack.trickle_extra.cancel()
        stack.trickle_extra = None
    os_signal(await stack.pid("ai-1"), signal.SIGCONT)
    await stack.ready()


async def kill_gateway(stack: GameDayStack) -> None:
    await stack.kill("gateway-1")


async def start_gateway(stack: GameDayStack) -> None:
    await stack.start("gateway-1")


async def stop_gateways(stack: GameDayStack) -> None:
    for number in range(1, stack.config.gateway_instances + 1):
        await stack.ctl("stop", f"gateway-{number}")


async def start_gateways(stack: GameDayStack) -> None:
    for number in range(1, stack.config.gateway_instances + 1):
        await stack.ctl("start", f"gateway-{number}")
    await stack.ready()


async def tabs_reconnected(stack: GameDayStack, start: float, end: float) -> list[Check]:
    """The tabs the dead instance held came back through NGINX to the other one."""
    assert stack.tabs is not None
    tabs = stack.tabs.all()
    moved = [tab for tab in tabs if any(at >= start for at in tab.reconnects)]
    await until(lambda: all(tab.connected for tab in tabs), 15.0)
    return [
        Check(
            "tabs on the killed instance reconnected", bool(moved), f"{len(moved)} of {len(tabs)}"
        ),
        Check(
            "every tab connected again",
            all(tab.connected for tab in tabs),
            f"{sum(tab.connected for tab in tabs)} of {len(tabs)}",
        ),
    ]


async def refused_while_down(stack: GameDayStack, start: float, end: float) -> list[Check]:
    """With no gateway, NGINX refuses a socket with 503 before the upgrade."""
    status = await stack.status_of(
        stack.base + "/ws", headers={"Connection": "Upgrade", "Upgrade": "websocket"}
    )
    return [Check("a new socket is refused with 503", status == 503, f"status {status}")]


async def caught_up(stack: GameDayStack, start: float, end: float) -> list[Check]:
    """Back from the outage, each tab got the payments its customer made meanwhile, once and
    in order."""
    tabs, trickle = stack.tabs, stack.trickle
    assert tabs is not None
    assert trickle is not None
    found = await tabs_reconnected(stack, start, end)
    missed = {p: n for p, n in trickle.payers.items() if start <= trickle.payments[p] <= end}
    await stack.settle_all(since=start)

    def lacking() -> list[str]:
        return [
            payment
            for payment, number in missed.items()
            for tab in tabs.by_customer[number]
            if payment not in tab.paid
        ]

    await until(lambda: not lacking(), 20.0)
    wrong = tabs.disagreements()
    return [
        *found,
        Check(
            f"every tab received the {len(missed)} payments made while no gateway ran",
            bool(missed) and not lacking(),
            f"{len(lacking())} missing",
        ),
        Check("each tab saw each event once, as its other tab did", not wrong, "; ".join(wrong)),
    ]


async def stall_gateways(stack: GameDayStack) -> None:
    """Every gateway stalls (SIGSTOP) 1.5 s of every 2 for 40 s: events wait to be pushed."""
    pids = [await stack.pid(f"gateway-{n}") for n in range(1, stack.config.gateway_instances + 1)]
    for _ in range(20):
        for pid in pids:
            os_signal(pid, signal.SIGSTOP)
        await asyncio.sleep(1.5)
        for pid in pids:
            os_signal(pid, signal.SIGCONT)
        await asyncio.sleep(0.5)


async def unstall_gateways(stack: GameDayStack) -> None:
    for n in range(1, stack.config.gateway_instances + 1):
        os_signal(await stack.pid(f"gateway-{n}"), signal.SIGCONT)
    await stack.ready()


# In an order where no fault's slow-burn ticket is still firing from an earlier one's: the
# datastores' errors before the latency fault, the latency fault before the burst of checkouts
# that slows requests, the worker's outage before the broker's (which delays settlements too).
CATALOGUE = [
    Fault(
        "core-instance-down",
        "core-2 killed (SIGKILL) and kept down past supervisord's restart",
        kill_core,
        start_core,
        [Expect("InstanceDown", {"job": "relais-core"})],
        "instance-down.md",
        [
            Evidence("make status", "core-2"),
            Evidence('up{job=~"relais-.*"} == 0', "relais-core"),
        ],
        during=nothing_failed,
        fire_within=60.0,
    ),
    Fault(
        "postgres-down",
        "PostgreSQL unreachable: every connection closed, new ones refused",
        cut("postgres"),
        reopen("postgres"),
        [
            Expect("DatastoreDown", {"job": "postgres"}),
            Expect("ApiAvailabilityBudgetBurn", {"service": "core"}),
            Expect("ApiAvailabilityBudgetBurnSlow", {"service": "core"}),
        ],
        "datastore-down.md",
        [
            Evidence("pg_up == 0", "postgres"),
            Evidence("make status", "PostgreSQL"),
            Evidence("make logs SERVICE=core-1", "dependency unavailable"),
        ],
        during=unavailable_with_retry_after,
        after=books_balance,
    ),
    Fault(
        "redis-down",
        "Redis unreachable: every connection closed, new ones refused",
        cut("redis"),
        reopen("redis"),
        [
            Expect("DatastoreDown", {"job": "redis"}),
            Expect("ApiAvailabilityBudgetBurn", {"service": "core"}),
        ],
        "datastore-down.md",
        [
            Evidence("redis_up == 0", "redis"),
            Evidence("make status", "Redis"),
        ],
        during=unavailable_with_retry_after,
        after=books_balance,
    ),
    Fault(
        "postgres-latency",
        "150 ms added each way in front of PostgreSQL; then core-2 dies while it burns",
        slow_postgres,
        fast_postgres,
        [
            Expect("ApiLatencyBudgetBurn", {"service": "core"}),
            Expect("ApiLatencyBudgetBurnSlow", {"service": "core"}),
            Expect("InstanceDown", {"job": "relais-core"}),
        ],
        "api-latency.md",
        [
            Evidence(
                "histogram_quantile(0.9, sum by (le) (rate("
                'relais_http_request_duration_seconds_bucket{service="core"}[1m]))) > 0.25',
                "value",
            ),
        ],
        during=latency_page_inhibited,
        after=books_balance,
        fire_within=180.0,
    ),
    Fault(
        "payments-worker-down",
        f"payments-1 stopped while customers place {BACKLOG} checkouts",
        stop_payments,
        start_payments,
        [
            Expect("InstanceDown", {"job": "relais-payments"}),
            Expect("ConsumersMissing", {"queue": "payments.commands"}),
            Expect("QueueBacklog", {"queue": "payments.commands"}),
            Expect("PaymentSettlementBudgetBurn", {"service": "core"}, after_restore=True),
            Expect("PaymentSettlementBudgetBurnSlow", {"service": "core"}, after_restore=True),
        ],
        "consumers-missing.md",
        [
            Evidence("make status", "payments-1"),
            Evidence("rabbitmq_detailed_queue_consumers == 0", "payments.commands"),
            Evidence("rabbitmq_detailed_queue_messages_ready > 1000", "payments.commands"),
        ],
        after=books_balance,
        fire_within=180.0,
    ),
    Fault(
        "rabbitmq-down",
        "RabbitMQ unreachable: every connection closed, new ones refused",
        cut("rabbitmq"),
        reopen("rabbitmq"),
        [
            Expect("OutboxLagging", {"service": "core"}),
            Expect("ConsumersMissing"),
        ],
        "outbox-lag.md",
        [
            Evidence(
                "max by (service) (max_over_time(relais_outbox_lag_seconds[1m])) > 30", "core"
            ),
            Evidence("make status", "RabbitMQ"),
        ],
        after=books_balance,
        fire_within=120.0,
    ),
    Fault(
        "poison-message",
        "a message no contract describes, published on payments.commands",
        publish_poison,
        discard_poison,
        [
            Expect("MessagesDeadLettered", {"queue": "payments.commands"}),
            Expect("DeadLettersWaiting", {"queue": "payments.commands.dlq"}),
        ],
        "dead-letters.md",
        [
            Evidence("make dlq", POISON_ID),
            Evidence("make logs SERVICE=payments-1", "dead-lettering"),
        ],
        fire_within=90.0,
    ),
    Fault(
        "provider-outage",
        "the sandbox told to fail every charge (processing_error)",
        outage(600),
        outage(0),
        [
            Expect("CheckoutSuccessBudgetBurn", {"service": "core"}),
            Expect("CheckoutSuccessBudgetBurnSlow", {"service": "core"}),
        ],
        "checkout-success.md",
        [
            Evidence("sum by (outcome) (rate(relais_payments_settled_total[1m])) > 0", "failed"),
        ],
        after=books_balance,
    ),
    Fault(
        "ai-worker-down",
        "ai-1 stopped",
        stop("ai-1"),
        start("ai-1"),
        [
            Expect("AiWorkerDown"),
            Expect("InstanceDown", {"job": "relais-ai"}),
            Expect("ConsumersMissing", {"queue": "ai.catalog"}),
        ],
        "ai-worker.md",
        [Evidence("make status", "ai-1"), Evidence('sum(up{job="relais-ai"}) == 0', "value")],
        during=fast_refusals,
        fire_within=60.0,
    ),
    Fault(
        "ai-worker-stalls",
        "ai-1 stalls (SIGSTOP) 3 s of every 3.5 for 40 s (the analysis deadline is 2 s)",
        stall_ai,
        unstall_ai,
        [
            Expect("AiQueueWaitHigh"),
            Expect("AiRequestsExpiring"),
        ],
        "ai-worker.md",
        [
            Evidence(
                "histogram_quantile(0.95, sum by (method, le) "
                '(rate(relais_rpc_queue_wait_seconds_bucket{service="ai"}[1m]))) > 2',
                "text",
            )
        ],
        fire_within=150.0,
    ),
    Fault(
        "exporter-down",
        "the Redis exporter stopped",
        stop("redis-exporter"),
        start("redis-exporter"),
        [Expect("ExporterDown", {"job": "redis"})],
        "exporter-down.md",
        [Evidence('up{job=~"nginx|postgres|redis|rabbitmq.*"} == 0', "redis")],
        fire_within=60.0,
    ),
]

CATALOGUE += [
    Fault(
        "gateway-instance-down",
        "gateway-1 killed (SIGKILL) and kept down while customers hold sockets on both",
        kill_gateway,
        start_gateway,
        [Expect("InstanceDown", {"job": "relais-gateway"})],
        "gateway.md",
        [Evidence("make status", "gateway-1")],
        during=tabs_reconnected,
        fire_within=60.0,
    ),
    Fault(
        "gateways-down",
        "every gateway stopped while customers keep paying",
        stop_gateways,
        start_gateways,
        [Expect("GatewayDown"), Expect("InstanceDown", {"job": "relais-gateway"})],
        "gateway.md",
        [Evidence('sum(up{job="relais-gateway"}) == 0', "value")],
        during=refused_while_down,
        after=caught_up,
        fire_within=60.0,
    ),
    Fault(
        "gateways-stall",
        "every gateway stalls (SIGSTOP) 1.5 s of every 2 for 40 s",
        stall_gateways,
        unstall_gateways,
        [Expect("GatewayPushSlow")],
        "gateway.md",
        [
            Evidence(
                "histogram_quantile(0.99, sum by (le) "
                "(rate(relais_gateway_push_latency_seconds_bucket[1m]))) > 0.5",
                "value",
            )
        ],
        fire_within=90.0,
    ),
]

# The short game day `make test` runs.
SHORT = ("core-instance-down", "poison-message", "redis-down")
