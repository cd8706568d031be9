-- Pay per gender x ethnicity x job level over all employers, as in the Boston pay-equity
-- study: headcount, total and average pay, and the spread (population standard deviation).
-- Cells with rows from fewer than min_contributors employers are suppressed inside MPC.
SELECT gender, ethnicity, job_level,
       COUNT(*) AS headcount,
       SUM(salary) AS total_pay,
       AVG(salary) AS avg_pay,
       STDDEV_POP(salary) AS spread
FROM payroll
GROUP BY gender, ethnicity, job_level
ORDER BY gender, ethnicity, job_level
