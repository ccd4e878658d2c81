-- Daily revenue per category over the last 30 days.
SELECT CAST(ts AS DATE) AS day, category, count(*) AS orders, round(sum(amount), 2) AS revenue
FROM orders
WHERE ts >= TIMESTAMP '2026-09-01 00:00:00'
GROUP BY 1, 2
ORDER BY 1, 2
