"""`REPLICA=1 make up`: a streaming replica of the stack's PostgreSQL, a cluster of the stack's
own on `REPLICA_PORT`, run by the stack's supervisord as `postgres-replica`.

It is made once with `pg_basebackup` (a replication slot keeps the WAL it has not received, up to
`max_slot_wal_keep_size`) and kept between `make down` and `make up`; when it has fallen behind
what the slot kept, it catches up from pgBackRest's archive (its `restore_command`). Core and the
payments worker read from it what tolerates lag (`DATABASE_REPLICA_URL`)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import asyncpg

from devstack.backups import CONFIG, STANZA
from devstack.postgres import (
    CLUSTERS_ROOT,
    Cluster,
    admin_value,
    as_postgres,
    as_root,
    cluster_dir,
    install_file,
    read_cluster,
    remove_cluster_dir,
    run,
    write_server_config,
)
from devstack.processes import start_process
from devstack.settings import StackSettings

PROGRAM = "postgres-replica"
# What the machine's cluster must allow for a replica (and pg_basebackup) to connect: its rules
# trust 127.0.0.1 and the socket already, but `all` does not cover replication connections.
REPLICATION_RULES = ["local replication all trust", "host replication all 127.0.0.1/32 trust"]


def replica_name(config: StackSettings) -> str:
    """The replica's folder name under the stack's clusters."""
    return f"replica-{config.database_name}"


def slot_name(config: StackSettings) -> str:
    """The replication slot that holds the replica's WAL on the primary."""
    return f"{config.database_name}_replica"[:63]


def allow_replication(config: StackSettings) -> None:
    """Add the replication rules to the machine cluster's pg_hba.conf (once) and reload it."""
    hba = Path(str(asyncio.run(admin_value(config.postgres_admin_url, "SHOW hba_file"))))
    present = run(as_root("cat", hba), capture=True)
    missing = [rule for rule in REPLICATION_RULES if rule not in present.splitlines()]
    if not missing:
        return
    added = "" if present.endswith("\n") else "\n"
    added += "# Relais: streaming replicas and pg_basebackup from this machine\n"
    added += "".join(f"{rule}\n" for rule in missing)
    install_file(hba, present + added, owner="postgres", mode="0640")
    asyncio.run(admin_value(config.postgres_admin_url, "SELECT pg_reload_conf()"))


def ensure_replica(config: StackSettings) -> None:
    """Make the replica if it does not exist, and start it under the stack's supervisord."""
    cluster = asyncio.run(read_cluster(config.postgres_admin_url))
    path = CLUSTERS_ROOT / replica_name(config)
    exists = run(
        as_root("sh", "-c", f"test -e {path}/standby.signal && echo yes || true"), capture=True
    )
    if not exists.strip():
        make_replica(config, cluster)
    start_process(
        PROGRAM,
        [str(cluster.bin / "postgres"), "-D", str(path)],
        {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        config,
        user="postgres",
        stop_signal="SIGINT",
    )


def make_replica(config: StackSettings, cluster: Cluster) -> None:
    """A base backup of the primary streamed into the replica's folder, configured to follow."""
    allow_replication(config)
    slot = slot_name(config)
    asyncio.run(_drop_slot(config, slot))
    path = cluster_dir(replica_name(config))
    print(f"making the replica on :{config.replica_port} (pg_basebackup)")
    run(
        as_postgres(
            cluster.bin / "pg_basebackup",
            f"--host={cluster.socket_directory}",
            f"--port={cluster.port}",
            "--username=postgres",
            f"--pgdata={path}",
            "--wal-method=stream",
            "--write-recovery-conf",
            f"--slot={slot}",
            "--create-slot",
            "--checkpoint=fast",
        )
    )
    write_server_config(
        path,
        config.replica_port,
        hot_standby="on",
        # The primary keeps what the replica's queries read: a long report is not cancelled.
        hot_standby_feedback="on",
        # Behind what the slot kept: the archive has it.
        restore_command=f'pgbackrest --config={CONFIG} --stanza={STANZA} archive-get %f "%p"',
    )


async def _drop_slot(config: StackSettings, slot: str) -> None:
    with contextlib.suppress(asyncpg.PostgresError):
        await admin_value(
            config.postgres_admin_url,
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = $1 AND NOT active",
            slot,
        )


def remove_replica(config: StackSettings) -> None:
    """Remove a stopped stack's replica: its folder and its slot on the primary."""
    remove_cluster_dir(replica_name(config))
    asyncio.run(_drop_slot(config, slot_name(config)))
