-- Join users and orders: revenue per city and level.
SELECT u.city, u.level, count(*) AS orders, round(sum(o.amount), 2) AS revenue
FROM orders o JOIN users u ON o.user_id = u.user_id
GROUP BY u.city, u.level
ORDER BY revenue DESC, u.city, u.level
LIMIT 20
