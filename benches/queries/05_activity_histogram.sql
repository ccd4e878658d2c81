-- Activity distribution: users per bucket of 10 events.
SELECT CAST(floor(events / 10.0) AS INTEGER) AS bucket, count(*) AS users
FROM (SELECT user_id, count(*) AS events FROM events GROUP BY user_id) per_user
GROUP BY 1
ORDER BY 1
