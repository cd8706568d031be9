-- Market concentration of the taxi market: the Herfindahl-Hirschman index (HHI), the sum of the
-- squared market shares (in percent) of the companies by revenue, on the usual 0..10,000 scale
-- (10,000 = one company has the whole market; below 1,500 = unconcentrated).
-- Revenue of a company = the fares of its valid trips: positive fare and distance (the TLC
-- files also hold refunds, disputes, no-charge and zero-distance records).
WITH revenue AS (
    SELECT VendorID AS company, SUM(fare_amount) AS rev
    FROM trips
    WHERE fare_amount > 0 AND trip_distance > 0
    GROUP BY VendorID
),
total AS (
    SELECT SUM(rev) AS total_rev FROM revenue
),
shares AS (
    SELECT company, 100.0 * rev / total_rev AS share
    FROM revenue CROSS JOIN total
)
SELECT SUM(share * share) AS hhi
FROM shares
