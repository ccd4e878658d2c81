-- Funnel: events and distinct users per event type.
SELECT event_type, count(*) AS events, count(DISTINCT user_id) AS users
FROM events
GROUP BY event_type
ORDER BY event_type
