#!/bin/sh
# The stack's roles and database on a new cluster: PostgreSQL's entrypoint runs this once, as
# postgres, when its volume is empty. `make compose-init` wrote them, with their passwords, as the
# postgres_init_sql secret; each service's migrate then makes its own schema.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    --file /run/secrets/postgres_init_sql
