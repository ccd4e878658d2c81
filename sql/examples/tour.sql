-- A tour of the demo data set: martdb sql -f sql/examples/tour.sql

-- The funnel over the last 90 days.
SELECT event_type, count(*) AS events, count(DISTINCT user_id) AS users
FROM events GROUP BY event_type ORDER BY events DESC;

-- Revenue per city for high-level users.
SELECT u.city, count(*) AS orders, round(sum(o.amount), 2) AS revenue
FROM orders o JOIN users u ON o.user_id = u.user_id
WHERE u.level >= 7
GROUP BY u.city ORDER BY revenue DESC LIMIT 10;

-- An audience: sports fans who carted but never ordered.
SELECT count(DISTINCT t.user_id) AS audience
FROM user_tags t
JOIN events e ON e.user_id = t.user_id AND e.event_type = 'cart'
WHERE t.tag = 'sports'
  AND t.user_id NOT IN (SELECT user_id FROM orders);

-- The past campaign: naive lift against the recorded true uplift.
SELECT treatment, count(*) AS users, avg(converted) AS conversion, avg(true_uplift) AS true_uplift
FROM campaign GROUP BY treatment ORDER BY treatment;

-- Identifiers shared by many users: the over-merge trap of identity resolution.
SELECT id_type, id_value, count(DISTINCT user_id) AS users
FROM user_identifiers GROUP BY id_type, id_value
HAVING count(DISTINCT user_id) > 3 ORDER BY users DESC LIMIT 10;

-- Weekly seasonality of sales.
SELECT extract(dow FROM day) AS weekday, round(avg(units), 1) AS avg_units
FROM daily_sales GROUP BY 1 ORDER BY 1;

-- Keep a segment as a table: it survives restarts.
CREATE OR REPLACE TABLE vip_buyers AS
SELECT DISTINCT o.user_id FROM orders o JOIN users u ON o.user_id = u.user_id WHERE u.level >= 8;
SELECT count(*) AS vip_buyers FROM vip_buyers;
