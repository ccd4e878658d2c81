-- Correctness check for point.sql, run once per server before timing, in the same
-- -M prepared mode: \gset aborts the client when the lookup returns no row, and a wrong
-- id or balance (accounts_small holds balance = (id * 37 % 100000) / 100) divides by zero.
\set id random(1, 10000)
SELECT id AS got_id, balance AS got_balance FROM accounts_small WHERE id = :id \gset
\set want (:id * 37 % 100000) / 100.0
\if :got_id != :id or abs(:got_balance - :want) > 0.000001
\set wrong_answer 1 / 0
\endif
