"""The stack's RabbitMQ vhost and users, each service's with only its own permissions."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess

from chassis.messaging import BrokerPermissions
from devstack.services import broker_permissions, run_service_command, service_env
from devstack.settings import StackSettings


def broker_users(config: StackSettings) -> dict[str, BrokerPermissions]:
    """Each service's broker user and what it may do (as the service itself says)."""
    return {
        config.rabbitmq_core_user: broker_permissions("services.core"),
        config.rabbitmq_payments_user: broker_permissions("services.payments"),
        config.rabbitmq_ai_user: broker_permissions("services.ai"),
        config.rabbitmq_gateway_user: broker_permissions("gateway"),
    }


def rabbitmqctl(*args: str) -> str:
    """Run a RabbitMQ admin command on the local node; its output."""
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout


def ensure_broker(config: StackSettings) -> None:
    """Create the stack's vhost and users on the local RabbitMQ if they do not exist: the
    operator's, with every permission, and each service's, with only its own."""
    if shutil.which("rabbitmqctl") is None:
        print("rabbitmqctl not found: create the vhost and users named by RABBITMQ_* yourself")
        return
    vhost = config.rabbitmq_vhost
    if vhost not in rabbitmqctl("list_vhosts", "--no-table-headers").split():
        rabbitmqctl("add_vhost", vhost)
    users = [
        line.split()[0]
        for line in rabbitmqctl("list_users", "--no-table-headers").splitlines()
        if line.strip()
    ]
    for user in (config.rabbitmq_user, *broker_users(config)):
        if user not in users:
            rabbitmqctl("add_user", user, config.rabbitmq_password)
    rabbitmqctl("set_permissions", "-p", vhost, config.rabbitmq_user, ".*", ".*", ".*")
    for user, permissions in broker_users(config).items():
        grant_broker_permissions(vhost, user, permissions)


def declare_queues(config: StackSettings) -> None:
    """Declare the queues of the services that consume another's events, before any starts:
    the AI worker's (core's product and order events would be unroutable until it runs) and the
    gateway's journal (events announced before it runs are kept for the users' clients)."""
    for name, module in (("ai-1", "services.ai"), ("gateway-1", "gateway")):
        run_service_command(module, ["declare"], service_env(config, name, 0, 0, traced=False))


def grant_broker_permissions(vhost: str, user: str, permissions: BrokerPermissions) -> None:
    """Give `user` exactly `permissions` in `vhost`."""
    rabbitmqctl(
        "set_permissions",
        "-p",
        vhost,
        user,
        permissions.configure,
        permissions.write,
        permissions.read,
    )
    for exchange, (write, read) in permissions.topics.items():
        rabbitmqctl("set_topic_permissions", "-p", vhost, user, exchange, write, read)


def enable_broker_metrics() -> None:
    """Turn on RabbitMQ's built-in Prometheus endpoint (port 15692) on the local node."""
    if shutil.which("rabbitmq-plugins") is None:
        return
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 15692), timeout=1):
        return  # it answers already (`rabbitmq-plugins` costs seconds: it boots an Erlang VM)
    subprocess.run(
        ["rabbitmq-plugins", "-q", "enable", "rabbitmq_prometheus"],
        check=False,
        capture_output=True,
        timeout=120,
    )


def drop_broker(config: StackSettings) -> None:
    """Delete the stack's vhost and its services' users (for throwaway stacks in tests and
    benchmarks; the users must not be shared with another stack)."""
    with contextlib.suppress(subprocess.CalledProcessError):
        rabbitmqctl("delete_vhost", config.rabbitmq_vhost)
    for user in broker_users(config):
        with contextlib.suppress(subprocess.CalledProcessError):
            rabbitmqctl("delete_user", user)
