-- The HHI query of examples/hhi, written so that the public company column stays public:
-- refunds and disputes (fare_amount <= 0) count as 0 revenue instead of being filtered out.
-- (A WHERE on the private fare_amount column would make the surviving VendorIDs depend on
-- private data, so the compiler would treat them as secret again.)
WITH revenue AS (
    SELECT VendorID AS company,
           SUM(CASE WHEN fare_amount > 0 THEN fare_amount ELSE 0 END) AS rev
    FROM trips
    GROUP BY VendorID
)
SELECT SUM((100.0 * rev / (SELECT SUM(rev) FROM revenue))
         * (100.0 * rev / (SELECT SUM(rev) FROM revenue))) AS hhi
FROM revenue
