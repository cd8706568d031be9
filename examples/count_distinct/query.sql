-- Distinct viewers over all three services (a viewer of two services counts once).
SELECT COUNT(DISTINCT user_id) AS viewers,
       COUNT(*) AS views,
       SUM(minutes) AS minutes
FROM views
WHERE title IN ('film01', 'film02')
