\set id random(1, 10000)
SELECT name, balance FROM accounts_small WHERE id = :id;
