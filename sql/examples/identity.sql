-- Identity resolution on the demo data: martdb sql -f sql/examples/identity.sql (after
-- `martdb demo`). `identity_edges` is what an ID-mapping job sees: pairs of identifiers
-- (phone, device_id, openid, email) observed together, with junk values ('00000000000',
-- 'null'), family tablets and store tablets among them. `user_identifiers` is the truth
-- the demo generated them from, so the result can be checked.

-- 1. Plain connected components: junk values and store tablets glue strangers together.
SELECT identifiers, id_types
FROM resolve_identities_persons('SELECT * FROM identity_edges')
ORDER BY identifiers DESC LIMIT 3;

-- 2. The rules, as rows: block junk values, treat a device linked to more than 8
--    identifiers as a shared tablet, allow one phone per person, and merge the links of
--    higher-priority types first (so a conflict drops the link through the device).
CREATE TABLE identity_rules AS SELECT * FROM (VALUES
  ('block_pattern', '*', '^(null|-1|0+)$'),
  ('max_degree', 'device_id', '8'),
  ('max_per_person', 'phone', '1'),
  ('priority', 'phone', '1'), ('priority', 'email', '2'),
  ('priority', 'openid', '3'), ('priority', 'device_id', '4')
) AS r(rule, id_type, value);

-- 3. What the rules rejected, and why.
SELECT reason, detail, count(*) AS links, sum(observations) AS observations
FROM resolve_identities_rejected('SELECT * FROM identity_edges', 'SELECT * FROM identity_rules')
GROUP BY reason, detail ORDER BY links DESC;

-- 4. Checked against the truth, over the identifiers that belong to one user (a shared
--    tablet belongs to several and cannot be right either way): persons that hold two
--    users' identifiers (over-merged) and users spread over several persons (split),
--    without rules and with them.
WITH own AS (SELECT id_type, id_value, min(user_id) AS user_id FROM user_identifiers
             GROUP BY id_type, id_value HAVING count(DISTINCT user_id) = 1),
     plain AS (SELECT o.user_id, r.person_id FROM own o
               JOIN resolve_identities('SELECT * FROM identity_edges') r
                 ON r.id_type = o.id_type AND r.id = o.id_value),
     ruled AS (SELECT o.user_id, r.person_id FROM own o
               JOIN resolve_identities('SELECT * FROM identity_edges',
                                       'SELECT * FROM identity_rules') r
                 ON r.id_type = o.id_type AND r.id = o.id_value)
SELECT 'no rules' AS run,
       (SELECT count(*) FROM (SELECT person_id FROM plain GROUP BY person_id
                              HAVING count(DISTINCT user_id) > 1)) AS over_merged_persons,
       (SELECT count(*) FROM (SELECT user_id FROM plain GROUP BY user_id
                              HAVING count(DISTINCT person_id) > 1)) AS split_users
UNION ALL
SELECT 'rules',
       (SELECT count(*) FROM (SELECT person_id FROM ruled GROUP BY person_id
                              HAVING count(DISTINCT user_id) > 1)),
       (SELECT count(*) FROM (SELECT user_id FROM ruled GROUP BY user_id
                              HAVING count(DISTINCT person_id) > 1))
ORDER BY run;

-- 5. The stored graph, built incrementally: July and August first, then September. The
--    second update adds identifiers to known persons (their ids stay) and merges persons
--    that new links join (one id survives; martdb.identity_merges keeps the other).
SELECT * FROM identity_update(
  'SELECT * FROM identity_edges WHERE observed_at < TIMESTAMP ''2026-09-01''',
  'SELECT * FROM identity_rules');
SELECT * FROM identity_update(
  'SELECT * FROM identity_edges WHERE observed_at >= TIMESTAMP ''2026-09-01''',
  'SELECT * FROM identity_rules');
SELECT count(*) AS merges, count(DISTINCT into_id) AS surviving_persons
FROM martdb.identity_merges;

-- 6. Counting people, not identifiers: users seen through several identifiers become one
--    person_id, looked up per row or joined through martdb.identity_map.
SELECT count(*) AS phones_and_openids,
       count(DISTINCT person_id(id_type, id_value)) AS persons
FROM user_identifiers WHERE id_type IN ('phone', 'openid');
