SELECT branch, SUM(balance) AS total, COUNT(*) AS n
FROM accounts
GROUP BY branch
