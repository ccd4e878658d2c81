-- Uplift modelling on the demo campaign: martdb sql -f sql/examples/uplift.sql (after
-- `martdb demo`). `campaign` is a past coupon campaign with a randomised treatment;
-- its `true_uplift` column is each user's true effect, which a model never sees and
-- which this script checks the model against.

-- 1. Train on 70% of the users, evaluate on the other 30%. The default learner is an
--    S-learner over gradient-boosted trees (options: 'learner = x, base = logistic', ...).
--    Each run stores a new version in martdb.models.
SELECT name, version, algorithm, training_rows, validation_rows,
       round(qini_auc, 4) AS qini_auc, round(uplift_auc, 4) AS uplift_auc, deployed
FROM uplift_train('coupon_uplift',
  'SELECT treatment, converted, recency_days, frequency, monetary, age, level, city
     FROM campaign',
  'treatment', 'converted');

SELECT name, version, algorithm, features, deployed FROM martdb.models;

-- 2. Score every campaign user with the deployed version.
CREATE TABLE campaign_scores AS
SELECT * FROM uplift_predict('coupon_uplift',
  'SELECT user_id, treatment, converted, true_uplift, recency_days, frequency, monetary,
          age, level, city FROM campaign');

-- 3. The recovered effect against the true one.
SELECT 'recovered' AS check_name,
       round(corr(uplift, true_uplift), 3) AS correlation,
       round(avg(uplift), 4) AS mean_predicted_uplift,
       round(avg(true_uplift), 4) AS mean_true_uplift,
       round(avg(converted) FILTER (WHERE treatment = 1)
             - avg(converted) FILTER (WHERE treatment = 0), 4) AS observed_average_effect
FROM campaign_scores;

-- 4. Qini and uplift AUC over all campaign users, and the observed uplift per decile of
--    score: the top deciles should gain, the bottom ones lose.
SELECT 'evaluation' AS check_name,
       round(qini_auc(converted, uplift, treatment), 4) AS qini_auc,
       round(uplift_auc(converted, uplift, treatment), 4) AS uplift_auc,
       round(uplift_at_k(converted, uplift, treatment, 0.2), 4) AS uplift_at_20pct
FROM campaign_scores;

SELECT bin AS decile, treated, control, round(uplift, 4) AS observed_uplift
FROM uplift_by_decile('SELECT converted, uplift, treatment FROM campaign_scores')
ORDER BY bin;

-- 5. The four groups, with their true average effect: persuadables gain, sleeping
--    dogs lose.
SELECT uplift_quadrant(p_treated, p_control) AS quadrant, count(*) AS users,
       round(avg(true_uplift), 4) AS true_uplift
FROM campaign_scores GROUP BY 1 ORDER BY 3 DESC;

-- 6. A budget of 500 coupons: the 500 persuadables with the highest uplift, and the
--    extra conversions they are truly worth, against 500 users picked at random.
SELECT 'budget' AS check_name, count(*) AS coupons,
       round(sum(true_uplift), 2) AS extra_conversions,
       round(500 * (SELECT avg(true_uplift) FROM campaign_scores), 2) AS extra_if_random
FROM (SELECT true_uplift,
             row_number() OVER (ORDER BY uplift DESC) AS rank
      FROM campaign_scores
      WHERE uplift_quadrant(p_treated, p_control) = 'persuadable') AS ranked
WHERE rank <= 500;
