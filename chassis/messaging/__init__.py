"""Messaging: RabbitMQ with the guarantees the stack promises.

The broker (`amqp_broker`, `Broker`, `BrokerPermissions`; exchanges `COMMANDS`, `EVENTS`, `RPC`,
`DEAD_LETTERS`), messages as pydantic models that carry their `type` and `version`
(`MessageTypes`, `UnknownContract`, `encode`, `type_name`), work-queue consumers driven by a
handler table (`consume_work_queue`, `Consumer`, `Poison`, `WorkQueue` and
`declare_work_queues` to declare them before a first start: ack after the effect, retries with
back-off, dead letters), the transactional outbox and its relay (`enqueue`, `outbox_relay`,
`first_delivery`, `derived_message_id`), RPC with deadlines (`RpcClient`, `serving_rpcs`), claim
checks for bodies too big for a message (`ClaimCheck`), and PostgreSQL LISTEN
(`setup_pg_listener`, `listening`). It names no message of any service.
"""

from chassis.messaging._amqp import (
    ALL_EXCHANGES,
    ATTEMPT_HEADER,
    BROKER,
    COMMANDS,
    DEAD_AT_HEADER,
    DEAD_LETTERS,
    DEFAULT,
    DEFAULT_EXCHANGE,
    EVENTS,
    QUEUE_HEADER,
    REASON_HEADER,
    RPC,
    Broker,
    BrokerPermissions,
    amqp_broker,
    broker_ready,
    dead_letter_queue,
    message_for,
    names,
    republished,
    retry_queue,
)
from chassis.messaging._claims import ClaimCheck
from chassis.messaging._consumer import (
    DEAD_LETTER_REASONS,
    AppMessageHandler,
    Consumer,
    Handlers,
    MessageHandler,
    Poison,
    WorkQueue,
    consume_work_queue,
    declare_work_queues,
)
from chassis.messaging._envelope import (
    MessageTypes,
    RpcError,
    UnknownContract,
    encode,
    message_type,
    type_name,
)
from chassis.messaging._listen import PG_LISTENER, listening, setup_pg_listener
from chassis.messaging._outbox import (
    OutboxRelay,
    derived_message_id,
    enqueue,
    first_delivery,
    outbox_relay,
)
from chassis.messaging._rpc import AppRpcHandler, RpcClient, RpcServer, serving_rpcs

__all__ = [
    "ALL_EXCHANGES",
    "ATTEMPT_HEADER",
    "BROKER",
    "COMMANDS",
    "DEAD_AT_HEADER",
    "DEAD_LETTERS",
    "DEAD_LETTER_REASONS",
    "DEFAULT",
    "DEFAULT_EXCHANGE",
    "EVENTS",
    "PG_LISTENER",
    "QUEUE_HEADER",
    "REASON_HEADER",
    "RPC",
    "AppMessageHandler",
    "AppRpcHandler",
    "Broker",
    "BrokerPermissions",
    "ClaimCheck",
    "Consumer",
    "Handlers",
    "MessageHandler",
    "MessageTypes",
    "OutboxRelay",
    "Poison",
    "RpcClient",
    "RpcError",
    "RpcServer",
    "UnknownContract",
    "WorkQueue",
    "amqp_broker",
    "broker_ready",
    "consume_work_queue",
    "dead_letter_queue",
    "declare_work_queues",
    "derived_message_id",
    "encode",
    "enqueue",
    "first_delivery",
    "listening",
    "message_for",
    "message_type",
    "names",
    "outbox_relay",
    "republished",
    "retry_queue",
    "serving_rpcs",
    "setup_pg_listener",
    "type_name",
]
