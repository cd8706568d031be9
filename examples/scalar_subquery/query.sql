-- Each sector's share of the total consumption, in percent.
SELECT sector,
       SUM(kwh) AS kwh,
       100.0 * SUM(kwh) / (SELECT SUM(kwh) FROM meters) AS pct_of_total
FROM meters
GROUP BY sector
ORDER BY sector
