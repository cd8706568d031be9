-- Total and average credit rating per zip code, over the people both sides know.
SELECT d.zip, SUM(s.rating) AS total_rating, COUNT(*) AS ratings
FROM demographics AS d
JOIN scores AS s ON d.ssn = s.ssn
GROUP BY d.zip
ORDER BY d.zip
