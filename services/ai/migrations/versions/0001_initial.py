"""AI schema: the search index's vectors, the baskets of paid orders, and what the
recommendation model learned from them.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from alembic import op

from chassis.migrations import execute_script

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


UPGRADE = """
    -- One row per product the worker has heard of: the catalog's `updated_at` it reflects (a
    -- later version wins), and, while the product lives, its embedding (float32, unit length).
    -- A deleted product keeps its row without a vector, so a late update cannot revive it.
    CREATE TABLE product_vectors (
        product_id uuid PRIMARY KEY,
        updated_at timestamptz NOT NULL,
        live boolean NOT NULL,
        name text NOT NULL DEFAULT '',
        category text NOT NULL DEFAULT '',
        price_cents bigint NOT NULL DEFAULT 0,
        currency char(3) NOT NULL DEFAULT 'XXX',
        text_digest bytea,
        embedding bytea,
        indexed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        CHECK (live = (embedding IS NOT NULL))
    );

    -- What each paid order bought together (from `order.paid`).
    CREATE TABLE baskets (
        order_id uuid PRIMARY KEY,
        product_ids uuid[] NOT NULL,
        paid_at timestamptz NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    CREATE INDEX baskets_recorded ON baskets (recorded_at);

    -- The co-purchase model: each product's nearest partners, best first by score.
    CREATE TABLE related_products (
        product_id uuid NOT NULL,
        related_id uuid NOT NULL,
        score real NOT NULL,
        PRIMARY KEY (product_id, related_id)
    );

    -- When each model was trained, and from how many baskets.
    CREATE TABLE models (
        name text PRIMARY KEY,
        trained_at timestamptz NOT NULL,
        baskets bigint NOT NULL,
        seconds double precision NOT NULL
    );
"""


def upgrade() -> None:
    execute_script(op, UPGRADE)


def downgrade() -> None:
    execute_script(op, "DROP TABLE models, related_products, baskets, product_vectors;")
