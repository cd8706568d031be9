-- Mean and spread of the readings per sensor type, over the three labs.
SELECT sensor,
       COUNT(*) AS n,
       AVG(reading) AS mean,
       STDDEV(reading) AS sd,
       VARIANCE(reading) AS var
FROM readings
GROUP BY sensor
ORDER BY sensor
