"""Core schema: users, products, orders, idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

from chassis.migrations import execute_script

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


UPGRADE = """
    CREATE EXTENSION IF NOT EXISTS pg_trgm;

    CREATE TABLE users (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        email text NOT NULL,
        name text NOT NULL,
        role text NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'admin')),
        password_hash text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    CREATE UNIQUE INDEX users_email_key ON users (lower(email));
    CREATE INDEX users_page ON users (created_at, id);

    CREATE TABLE products (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        sku text NOT NULL,
        name text NOT NULL,
        description text NOT NULL DEFAULT '',
        price_cents bigint NOT NULL CHECK (price_cents > 0),
        currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
        stock integer NOT NULL CHECK (stock >= 0),
        category text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        deleted_at timestamptz
    );
    CREATE UNIQUE INDEX products_sku_key ON products (sku) WHERE deleted_at IS NULL;
    CREATE INDEX products_page ON products (created_at, id) WHERE deleted_at IS NULL;
    CREATE INDEX products_category_page ON products (category, created_at, id)
        WHERE deleted_at IS NULL;
    CREATE INDEX products_name_trgm ON products USING gin (name gin_trgm_ops);

    CREATE TABLE orders (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id uuid NOT NULL REFERENCES users (id),
        status text NOT NULL CHECK (status IN
            ('pending_payment', 'paid', 'payment_failed', 'cancelled', 'refunded')),
        total_cents bigint NOT NULL CHECK (total_cents > 0),
        currency char(3) NOT NULL,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    CREATE INDEX orders_by_user ON orders (user_id, created_at DESC, id DESC);

    CREATE TABLE order_items (
        order_id uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
        product_id uuid NOT NULL REFERENCES products (id),
        quantity integer NOT NULL CHECK (quantity > 0),
        unit_price_cents bigint NOT NULL CHECK (unit_price_cents > 0),
        PRIMARY KEY (order_id, product_id)
    );

    CREATE TABLE idempotency_keys (
        user_id uuid NOT NULL REFERENCES users (id),
        key text NOT NULL,
        request_hash text NOT NULL,
        status_code integer NOT NULL,
        response jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (user_id, key)
    );
    CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
"""


def upgrade() -> None:
    execute_script(op, UPGRADE)


def downgrade() -> None:
    execute_script(op, "DROP TABLE idempotency_keys, order_items, orders, products, users;")
