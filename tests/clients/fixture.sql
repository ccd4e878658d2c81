-- Data for the client checks (check_psycopg.py, JdbcCheck.java). Loaded with psql into
-- both martdb and a real PostgreSQL, so only plain SQL both accept: no constraints,
-- defaults or serials. The checks assert these exact values; change both together.
CREATE TABLE shop_orders (
    order_id BIGINT,
    customer TEXT,
    amount DOUBLE PRECISION,
    placed_at TIMESTAMP,
    paid BOOLEAN,
    qty INTEGER
);

INSERT INTO shop_orders VALUES
    (1, 'alice', 12.5, '2024-03-01 10:15:00', true, 2),
    (2, NULL, 20.25, '2024-03-02 11:30:00', false, 1),
    (3, 'carol', 99.75, '2024-03-03 09:00:00', true, 5);

CREATE VIEW big_orders AS SELECT order_id, amount FROM shop_orders WHERE amount > 15;
