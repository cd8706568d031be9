-- Herfindahl-Hirschman index of the taxi market: the sum of the squared market shares
-- (in percent) of the companies, by revenue from paid trips; 0..10000.
WITH revenue AS (
    SELECT VendorID AS company, SUM(fare_amount) AS rev
    FROM trips
    WHERE fare_amount > 0
    GROUP BY VendorID
)
SELECT SUM((100.0 * rev / (SELECT SUM(rev) FROM revenue))
         * (100.0 * rev / (SELECT SUM(rev) FROM revenue))) AS hhi
FROM revenue
