-- Rule matching on the demo data: martdb sql -f sql/examples/rules.sql (after
-- `martdb demo`). Rules are rows of martdb.rules; match_rules runs them over any query,
-- apply_rules carries their actions out. `users` is the profile table: conditions read
-- its columns (level, city) as if they were the event's.

-- 1. Four rules: a thank-you coupon for big orders by members of level 5 and up; an sms
--    to an order from Shanghai; an abandoned-cart reminder (a cart not followed by an
--    order within 2 hours), capped at one sms a day per user; and a browse-heavy nudge
--    (three views of the same category within 30 minutes) in a 'first' group under a
--    higher-priority rule for the same views by VIPs.
SELECT create_coupon_pool('rules_thanks', 200, '{"per_user_limit": 1, "face_value": 500}');

INSERT INTO martdb.rules (id, name, event_type, condition, pattern, action, action_params,
                          frequency_cap, rule_group, group_policy, priority) VALUES
  (1, 'thank big spenders', 'order', 'amount > 500 AND level >= 5', NULL,
   'coupon', '{"pool": "rules_thanks"}', NULL, 'orders', 'all', 0),
  (2, 'shanghai order sms', 'order', 'city = ''Shanghai''', NULL,
   'message', '{"channel": "sms", "template": "order_thanks"}', '1/1d', 'orders', 'all', 0),
  (3, 'abandoned cart', 'cart', NULL, 'not followed by order within 2h',
   'message', '{"channel": "sms", "template": "cart_reminder"}', '1/1d', 'carts', 'all', 0),
  (4, 'browsing vip', 'view', 'level >= 8', 'times(3) of view with same category within 30m',
   'message', '{"channel": "push", "template": "vip_picks"}', NULL, 'browsing', 'first', 10),
  (5, 'browsing', 'view', NULL, 'times(3) of view with same category within 30m',
   'message', '{"channel": "push", "template": "picks"}', NULL, 'browsing', 'first', 0);

SELECT id, name, version, event_type, rule_group, group_policy, frequency_cap FROM martdb.rules ORDER BY id;

-- 2. What the rules match in September (nothing is applied yet).
SELECT rule_id, rule_name, count(*) AS matches, count(DISTINCT user_id) AS users
FROM match_rules(
  $$ SELECT event_id, user_id, event_type, category, ts, amount FROM events
     WHERE ts >= TIMESTAMP '2026-09-01 00:00:00' $$,
  'SELECT user_id, level, city FROM users')
GROUP BY rule_id, rule_name ORDER BY rule_id;

-- 3. The same, checked against plain SQL for the rules that need no window: big orders
--    by level >= 5 members, orders from Shanghai (before the daily sms cap).
SELECT 'plain sql' AS check, count(*) FILTER (WHERE e.amount > 500 AND u.level >= 5) AS rule_1,
       count(*) FILTER (WHERE u.city = 'Shanghai') AS rule_2_uncapped
FROM events e JOIN users u USING (user_id)
WHERE e.event_type = 'order' AND e.ts >= TIMESTAMP '2026-09-01 00:00:00';

-- 4. Apply them: coupons are reserved (once per rule and event, never past the stock),
--    messages queued in the outbox. Running it twice changes nothing.
SELECT action, outcome, count(*) AS n
FROM apply_rules(
  $$ SELECT event_id, user_id, event_type, category, ts, amount FROM events
     WHERE ts >= TIMESTAMP '2026-09-01 00:00:00' $$,
  'SELECT user_id, level, city FROM users')
GROUP BY action, outcome ORDER BY action, outcome;

SELECT 'outbox' AS what, channel, count(*) AS queued FROM martdb.rule_outbox GROUP BY channel ORDER BY channel;
SELECT 'pool' AS what, reserved, remaining FROM martdb.coupon_pools WHERE pool = 'rules_thanks';
