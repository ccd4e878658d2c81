-- Multi-touch attribution on the demo data set: martdb sql -f sql/examples/attribution.sql
-- (after `martdb demo`, or against `martdb serve --demo` with psql -f).

-- A journey is a user's marketing touches up to their first order (all of them for users who
-- never ordered); it converted if the user ordered, and is worth that first order's amount.
CREATE OR REPLACE VIEW first_order_journeys AS
WITH first_orders AS (
  SELECT user_id, ts, amount FROM (
    SELECT user_id, ts, amount,
           row_number() OVER (PARTITION BY user_id ORDER BY ts, order_id) AS n
    FROM orders) AS numbered
  WHERE n = 1
)
SELECT t.user_id, t.ts, t.channel, f.user_id IS NOT NULL AS converted, f.amount AS value
FROM touchpoints t LEFT JOIN first_orders f ON f.user_id = t.user_id
WHERE f.ts IS NULL OR t.ts <= f.ts;

-- How many journeys, and how many converted.
SELECT count(DISTINCT user_id) AS journeys,
       count(DISTINCT CASE WHEN converted THEN user_id END) AS conversions
FROM first_order_journeys;

-- Every model side by side: credited conversions per channel. First touch rewards the
-- channels that open journeys (display), last touch those that close them (search, email);
-- Markov and Shapley sit in between, and Markov also weighs the journeys that went nowhere.
SELECT f.channel,
       round(f.conversions, 1)  AS first_touch,
       round(l.conversions, 1)  AS last_touch,
       round(li.conversions, 1) AS linear,
       round(td.conversions, 1) AS time_decay_7d,
       round(p.conversions, 1)  AS position_40_20_40,
       round(m.conversions, 1)  AS markov,
       round(s.conversions, 1)  AS shapley
FROM attribution('SELECT * FROM first_order_journeys', 'first') f
JOIN attribution('SELECT * FROM first_order_journeys', 'last') l ON l.channel = f.channel
JOIN attribution('SELECT * FROM first_order_journeys', 'linear') li ON li.channel = f.channel
JOIN attribution('SELECT * FROM first_order_journeys', 'time_decay') td ON td.channel = f.channel
JOIN attribution('SELECT * FROM first_order_journeys', 'position') p ON p.channel = f.channel
JOIN attribution('SELECT * FROM first_order_journeys', 'markov') m ON m.channel = f.channel
JOIN attribution('SELECT * FROM first_order_journeys', 'shapley') s ON s.channel = f.channel
ORDER BY f.channel;

-- The Markov model's view: how much of the conversion probability is lost without each
-- channel (removal effect), its share of the credit and of the revenue.
SELECT channel,
       round(removal_effect, 3) AS removal_effect,
       round(share, 3)          AS share,
       round(value, 2)          AS revenue
FROM attribution('SELECT * FROM first_order_journeys', 'markov')
ORDER BY removal_effect DESC;

-- Parameters: a 1-day half-life puts almost everything on the last touches; a 30/40/30
-- position split gives the middle of the journey more.
SELECT td.channel,
       round(td.share, 3) AS time_decay_1d,
       round(p.share, 3)  AS position_30_40_30
FROM attribution('SELECT * FROM first_order_journeys', 'time_decay', 1) td
JOIN attribution('SELECT * FROM first_order_journeys', 'position', 0.3) p ON p.channel = td.channel
ORDER BY td.channel;

-- Attribution of one segment only: the query can filter, e.g. journeys of the last 30 days
-- of the data (dollar quoting saves doubling the quotes inside).
SELECT channel, round(conversions, 1) AS conversions, round(value, 2) AS revenue
FROM attribution($$ SELECT * FROM first_order_journeys
                    WHERE user_id IN (SELECT user_id FROM first_order_journeys
                                      GROUP BY user_id
                                      HAVING max(ts) >= TIMESTAMP '2026-09-01 00:00:00') $$,
                 'shapley')
ORDER BY channel;
