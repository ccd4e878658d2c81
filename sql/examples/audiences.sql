-- Audiences on the demo data set: martdb sql -f sql/examples/audiences.sql
-- (after `martdb demo`, or against `martdb serve --demo` with psql -f).

-- One roaring bitmap of users per tag (ClickHouse's groupBitmapState).
CREATE OR REPLACE TABLE tag_bitmaps AS
SELECT tag, group_bitmap_state(user_id) AS users
FROM user_tags GROUP BY tag;

-- Behaviour as bitmaps too: who carted, who ordered in the last 30 days of the data.
INSERT INTO tag_bitmaps
SELECT 'carted', group_bitmap_state(user_id) FROM events WHERE event_type = 'cart';
INSERT INTO tag_bitmaps
SELECT 'ordered_30d', group_bitmap_state(user_id) FROM orders
WHERE ts >= (SELECT max(ts) FROM orders) - INTERVAL '30 days';

-- The largest tags.
SELECT tag, bitmap_cardinality(users) AS users
FROM tag_bitmaps ORDER BY users DESC LIMIT 10;

-- "Sports fans who carted and did not order in the last 30 days": a count in one pass.
SELECT bitmap_expr_cardinality(users, tag, '(sports & carted) - ordered_30d') AS audience
FROM tag_bitmaps;

-- The same with ClickHouse's functions, for scripts ported from ClickHouse.
SELECT bitmapAndnotCardinality(bitmapAnd(s.users, c.users), o.users) AS audience
FROM tag_bitmaps s, tag_bitmaps c, tag_bitmaps o
WHERE s.tag = 'sports' AND c.tag = 'carted' AND o.tag = 'ordered_30d';

-- Doris's intersect_count: users with both tags.
SELECT intersect_count(users, tag, 'app_user', 'urban') AS urban_app_users
FROM tag_bitmaps;

-- Save it as a named audience, with its definition, to refresh when the data changes.
SELECT audience_save('sports_cart_abandoners',
  'SELECT bitmap_expr(users, tag, ''(sports & carted) - ordered_30d'') FROM tag_bitmaps') AS members;

SELECT name, cardinality, bytes, definition FROM martdb.audiences;

-- Its members as rows, joined back to the users (the first page of 10).
SELECT u.user_id, u.city, u.level
FROM unnest(bitmap_to_array(sub_bitmap(audience('sports_cart_abandoners'), 0, 10))) AS m(user_id)
JOIN users u ON u.user_id = m.user_id
ORDER BY u.user_id;

-- Users keyed by text (phones, openids): dense ids keep their bitmaps compact.
SELECT id_type, bitmap_cardinality(group_bitmap_state(dense_id(id_type, id_value))) AS identifiers
FROM user_identifiers GROUP BY id_type ORDER BY id_type;

SELECT namespace, count(*) AS ids, max(dense_id) AS largest FROM martdb.id_dictionary
GROUP BY namespace ORDER BY namespace;

SELECT audience_refresh('sports_cart_abandoners') AS members_now;
