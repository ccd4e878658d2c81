-- Which tags do buyers carry: distinct buyers per tag.
SELECT t.tag, count(DISTINCT o.user_id) AS buyers
FROM user_tags t JOIN orders o ON o.user_id = t.user_id
GROUP BY t.tag
ORDER BY buyers DESC, t.tag
LIMIT 10
