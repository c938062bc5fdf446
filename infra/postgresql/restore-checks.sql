-- What the stack's database must satisfy at any moment, and the counts a restored copy is
-- compared with (the source's at the recovery target): one row. Run by `make restore-check`,
-- `make restore-test`, `make failover-drill`, the game day and the postgresql role's restore
-- test.
SELECT
    (SELECT count(*) FROM core.orders) AS orders,
    (SELECT count(*) FROM core.orders WHERE status IN ('paid', 'refunded')) AS paid_orders,
    (SELECT count(*) FROM payments.payments) AS payments,
    (SELECT count(*) FROM payments.ledger_transactions) AS ledger_transactions,
    (SELECT count(*) FROM payments.ledger_entries) AS ledger_entries,
    -- Violations: each must be 0.
    (SELECT count(*) FROM (
        SELECT transaction_id FROM payments.ledger_entries
        GROUP BY transaction_id HAVING sum(amount_cents) <> 0) AS unbalanced
    ) AS unbalanced_transactions,
    (SELECT count(*) FROM payments.ledger_transactions t
     WHERE NOT EXISTS (SELECT 1 FROM payments.ledger_entries e WHERE e.transaction_id = t.id)
    ) AS transactions_without_entries,
    (SELECT count(*) FROM core.orders o
     WHERE o.status IN ('paid', 'refunded') AND NOT EXISTS (
         SELECT 1 FROM payments.payments p
         JOIN payments.ledger_transactions t ON t.payment_id = p.id AND t.kind = 'charge'
         JOIN payments.ledger_entries e ON e.transaction_id = t.id
         WHERE p.order_id = o.id)
    ) AS paid_orders_without_capture,
    (SELECT count(*) FROM (
        SELECT order_id FROM core.payments WHERE status = 'succeeded'
        GROUP BY order_id HAVING count(*) > 1) AS twice
    ) AS orders_paid_twice,
    (SELECT count(*) FROM core.payments c JOIN payments.payments p USING (id)
     WHERE c.status IN ('succeeded', 'failed') AND p.status IN ('succeeded', 'failed')
       AND c.status <> p.status
    ) AS payments_settled_differently,
    (SELECT count(*) FROM core.payments c JOIN core.orders o ON o.id = c.order_id
     WHERE c.status = 'succeeded' AND o.status NOT IN ('paid', 'refunded')
    ) AS succeeded_payments_of_unpaid_orders;
