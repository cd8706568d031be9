-- Pay per gender and job level over all employers, as in the Boston pay-equity study:
-- cells with fewer than 8 employees are suppressed.
SELECT job_level, gender,
       COUNT(*) AS employees,
       SUM(salary) AS total_salary,
       AVG(salary) AS avg_salary,
       MIN(salary) AS min_salary,
       MAX(salary) AS max_salary
FROM payroll
GROUP BY job_level, gender
HAVING COUNT(*) >= 8
ORDER BY job_level, gender
