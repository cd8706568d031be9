-- Units, revenue and number of sales per (region, category) over both stores, only for the
-- combinations with at least 8 sales and more than 1000 in revenue.
SELECT region, category,
       SUM(quantity) AS units,
       SUM(amount) AS revenue,
       COUNT(*) AS sales
FROM sales
GROUP BY region, category
HAVING COUNT(*) >= 8 AND SUM(amount) > 1000
ORDER BY region, category
