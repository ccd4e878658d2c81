-- Forecasting the demo's daily sales: martdb sql -f sql/examples/forecast.sql (after
-- `martdb demo`). `daily_sales` has two years of units per store and product, with a
-- weekly and a yearly cycle, trends, a few single-day spikes, missing days and some
-- intermittent series.

-- 1. How good would last month's forecast have been? Forecast the last 28 days from the
--    days before them and compare with what happened.
CREATE TABLE backtest AS
SELECT f.*, s.units
FROM forecast('SELECT store_id, product_id, day, units FROM daily_sales
               WHERE day <= DATE ''2026-09-02''',
              horizon => 28, level => [80, 95]) AS f
JOIN daily_sales AS s USING (store_id, product_id, day);

-- Interval coverage: about 80% and 95% of the actual days should fall inside. The
-- error is scaled by the mean daily units of each series (WAPE).
SELECT 'backtest' AS check_name,
       count(DISTINCT (store_id, product_id)) AS series,
       round(avg(CASE WHEN units BETWEEN lo_80 AND hi_80 THEN 1.0 ELSE 0.0 END), 3)
         AS coverage_80,
       round(avg(CASE WHEN units BETWEEN lo_95 AND hi_95 THEN 1.0 ELSE 0.0 END), 3)
         AS coverage_95,
       round(sum(abs(units - forecast)) / sum(units), 3) AS wape
FROM backtest;

-- Which model each series got (auto: the best on the series' own last 28 days).
SELECT model, count(DISTINCT (store_id, product_id)) AS series
FROM backtest GROUP BY model ORDER BY series DESC, model;

-- 2. The next 28 days for every series, kept as a table.
CREATE TABLE sales_forecast AS
SELECT * FROM forecast('SELECT store_id, product_id, day, units FROM daily_sales',
                       horizon => 28);

SELECT 'next_28_days' AS check_name, count(*) AS forecast_rows,
       count(DISTINCT (store_id, product_id)) AS series,
       min(day) AS first_day, max(day) AS last_day,
       round(sum(forecast)) AS total_units
FROM sales_forecast;

-- 3. The days that broke the pattern: observations outside their model's 99% interval.
CREATE TABLE sales_anomalies AS
SELECT * FROM forecast_anomalies(
  'SELECT store_id, product_id, day, units FROM daily_sales', level => 99);

SELECT 'anomalies' AS check_name, count(*) AS observations,
       sum(CASE WHEN anomaly THEN 1 ELSE 0 END) AS flagged,
       sum(CASE WHEN anomaly AND units > 2.5 * fitted THEN 1 ELSE 0 END) AS spikes
FROM sales_anomalies;

SELECT store_id, product_id, day, units, round(fitted, 1) AS expected,
       round(score, 1) AS score, model
FROM sales_anomalies WHERE anomaly ORDER BY score DESC LIMIT 10;
