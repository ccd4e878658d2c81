-- A/B analysis of the demo coupon campaign: martdb sql -f sql/examples/experiments.sql
-- (after `martdb demo`). `campaign` has one row per user: a randomised `treatment` (the
-- coupon, 1) or control (0), the pre-campaign spend `monetary`, and the outcome
-- (`converted`, `revenue`).

-- 1. Is the split healthy? A sample ratio mismatch against the intended 50/50 means the
--    assignment or the logging is broken, and nothing below can be trusted.
SELECT round(s.statistic, 3) AS chi_square, round(s.p_value, 4) AS p_value, s.mismatch AS mismatch
FROM (SELECT ab_srm(users, 1) AS s
      FROM (SELECT treatment, count(*) AS users FROM campaign GROUP BY treatment));

-- 2. Conversion: the two-proportion z-test, with the absolute and relative lift.
SELECT round(r.control, 4) AS control_rate, round(r.treatment, 4) AS treatment_rate,
       round(r.difference, 4) AS lift, round(r.difference_low, 4) AS lift_low,
       round(r.difference_high, 4) AS lift_high, round(r.relative, 3) AS relative_lift,
       r.p_value AS p_value
FROM (SELECT ab_proportion_test(c.users, c.conversions, t.users, t.conversions) AS r
      FROM (SELECT treatment, count(*) AS users, sum(converted) AS conversions
            FROM campaign GROUP BY treatment) c
      JOIN (SELECT treatment, count(*) AS users, sum(converted) AS conversions
            FROM campaign GROUP BY treatment) t ON c.treatment = 0 AND t.treatment = 1);

-- 3. Revenue per user: Welch's t-test, and CUPED with the pre-campaign spend as the
--    covariate (same estimate on average, narrower interval), the sequential interval
--    (valid however often it is looked at), and revenue per converter as a ratio metric.
WITH g AS (SELECT treatment, ab_moments(revenue, monetary) AS spend,
                  ab_moments(revenue, converted) AS per_converter
           FROM campaign GROUP BY treatment),
     pair AS (SELECT c.spend AS c_spend, t.spend AS t_spend,
                     c.per_converter AS c_conv, t.per_converter AS t_conv
              FROM g c JOIN g t ON c.treatment = 0 AND t.treatment = 1),
     tests AS (SELECT 'revenue (welch)' AS test, ab_mean_test(c_spend, t_spend) AS r FROM pair
               UNION ALL SELECT 'revenue (cuped)', ab_cuped_test(c_spend, t_spend) FROM pair
               UNION ALL SELECT 'revenue (sequential)', ab_sequential_test(c_spend, t_spend) FROM pair
               UNION ALL SELECT 'revenue per converter', ab_ratio_test(c_conv, t_conv) FROM pair)
SELECT test, round(r.difference, 3) AS difference, round(r.difference_low, 3) AS low,
       round(r.difference_high, 3) AS high,
       round(r.difference_high - r.difference_low, 3) AS width, r.p_value AS p_value
FROM tests ORDER BY test;

-- 4. Many metrics looked at together: Holm's correction of their p-values.
WITH g AS (SELECT treatment, count(*) AS users, sum(converted) AS conversions,
                  ab_moments(revenue) AS revenue, ab_moments(revenue, monetary) AS cuped
           FROM campaign GROUP BY treatment),
     p AS (SELECT 'conversion' AS metric,
                  (ab_proportion_test(c.users, c.conversions, t.users, t.conversions))['p_value'] AS p
           FROM g c JOIN g t ON c.treatment = 0 AND t.treatment = 1
           UNION ALL
           SELECT 'revenue', (ab_mean_test(c.revenue, t.revenue))['p_value']
           FROM g c JOIN g t ON c.treatment = 0 AND t.treatment = 1
           UNION ALL
           SELECT 'revenue (cuped)', (ab_cuped_test(c.cuped, t.cuped))['p_value']
           FROM g c JOIN g t ON c.treatment = 0 AND t.treatment = 1)
SELECT metric, p, p_adjust(p, 'holm') OVER () AS p_holm FROM p ORDER BY metric;

-- 5. Planning the next test: users per group to detect one more point of conversion on
--    the control's rate, and what the campaign's control group could detect.
SELECT round(avg(converted), 4) AS control_rate,
       ceil(ab_sample_size(avg(converted), 0.01)) AS users_for_one_point,
       round(ab_mde(avg(converted), count(*)), 4) AS detectable_with_this_control
FROM campaign WHERE treatment = 0;

-- 6. The next experiment's assignment: three variants at 50/25/25, stable per user.
SELECT ab_variant(user_id, 'coupon_size_2026_12', ['control', '20_off_100', '30_off_150'],
                  [50, 25, 25]) AS variant,
       count(*) AS users
FROM users GROUP BY 1 ORDER BY 1;
