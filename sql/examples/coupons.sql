-- Coupons on the demo data set: martdb sql -f sql/examples/coupons.sql
-- (after `martdb demo`; it runs once per data directory: pools and request keys are
-- durable, so a second run answers duplicate:… for every reservation).

-- A flash sale for the users tagged 'sports': only they may reserve.
SELECT audience_save('sports_fans',
  'SELECT group_bitmap_state(user_id) FROM user_tags WHERE tag = ''sports''') AS members;

-- 200 coupons worth 5.00 each, one per user, a 1,000.00 budget (amounts in cents), held
-- for 10 minutes once reserved.
SELECT create_coupon_pool('flash_sports', 200,
  '{"per_user_limit": 1, "face_value": 500, "budget": 100000,
    "audience": "sports_fans", "hold_seconds": 600}') AS status;

-- Every user asks once; the request key makes a retry safe. One statement: its rows are
-- decided in order and committed together.
CREATE TABLE flash_requests AS
SELECT user_id, reserve_coupon('flash_sports', user_id, 'flash:' || user_id) AS outcome
FROM users ORDER BY user_id;

SELECT outcome, count(*) AS users FROM flash_requests GROUP BY outcome ORDER BY users DESC;

-- A retry of the first ten requests changes nothing.
SELECT outcome, count(*) AS calls
FROM (SELECT reserve_coupon('flash_sports', user_id, 'flash:' || user_id) AS outcome
      FROM flash_requests ORDER BY user_id LIMIT 10) t
GROUP BY outcome ORDER BY outcome;

-- Half of the holders check out (redeem), a tenth give the coupon back (release). Keep
-- the answers in a table: filtering on a writing function's result in the same query
-- may make the optimizer call it twice (harmless, the second call answers duplicate:…,
-- but then that is what the query shows).
CREATE TABLE flash_settled AS
SELECT user_id,
       CASE WHEN user_id % 10 = 0 THEN release_coupon('flash_sports', user_id, 'flash:' || user_id)
            WHEN user_id % 2 = 1 THEN redeem_coupon('flash_sports', user_id, 'flash:' || user_id)
       END AS settled
FROM flash_requests WHERE outcome = 'reserved';

SELECT settled, count(*) AS coupons FROM flash_settled
WHERE settled IS NOT NULL GROUP BY settled ORDER BY settled;

-- Live stock: released coupons are back on sale.
SELECT pool, status, stock, remaining, reserved, redeemed, released, refused, budget_used
FROM martdb.coupon_pools;

-- The operators' check: counters against a recount of every reservation.
SELECT pool, reserved, reserved_recounted, redeemed, redeemed_recounted, balanced
FROM martdb.coupon_reconciliation;

-- Pause the sale.
SELECT alter_coupon_pool('flash_sports', '{"status": "paused"}') AS status;
