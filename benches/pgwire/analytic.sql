SELECT event_type, count(*) AS events, count(DISTINCT user_id) AS users
FROM events
WHERE ts >= TIMESTAMP '2026-08-01'
GROUP BY event_type
ORDER BY event_type;
