-- The result DuckDB gives over all employers' rows (an `owner` column says whose each row is)
-- with the employers' min_group = 5 written out: the test compares sqlmpc's run with it.
SELECT job_level, gender,
       COUNT(*) AS employees,
       SUM(salary) AS total_salary,
       AVG(salary) AS avg_salary,
       MIN(salary) AS min_salary,
       MAX(salary) AS max_salary
FROM payroll
GROUP BY job_level, gender
HAVING COUNT(*) >= 8
   AND (COUNT(*) FILTER (WHERE owner = 'employer1') = 0 OR COUNT(*) FILTER (WHERE owner = 'employer1') >= 5)
   AND (COUNT(*) FILTER (WHERE owner = 'employer2') = 0 OR COUNT(*) FILTER (WHERE owner = 'employer2') >= 5)
   AND (COUNT(*) FILTER (WHERE owner = 'employer3') = 0 OR COUNT(*) FILTER (WHERE owner = 'employer3') >= 5)
   AND (COUNT(*) FILTER (WHERE owner = 'employer4') = 0 OR COUNT(*) FILTER (WHERE owner = 'employer4') >= 5)
ORDER BY job_level, gender
