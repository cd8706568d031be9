-- Adult first-time admissions in February and March, per department, over the union of the
-- three hospitals' admissions. The WHERE is written once, over the union; the compiler pushes
-- it (and the per-department partial sums) below the union into each hospital's local job.
SELECT department,
       COUNT(*) AS admissions,
       SUM(cost) AS total_cost,
       MAX(length_of_stay) AS longest_stay
FROM (
    SELECT department, admitted, age, cost, length_of_stay, readmitted FROM hospital_a.admissions
    UNION ALL
    SELECT department, admitted, age, cost, length_of_stay, readmitted FROM hospital_b.admissions
    UNION ALL
    SELECT department, admitted, age, cost, length_of_stay, readmitted FROM hospital_c.admissions
) AS a
WHERE admitted BETWEEN '2024-02-01' AND '2024-03-31'
  AND age >= 18
  AND department IN ('cardio', 'onco', 'er')
  AND NOT readmitted
GROUP BY department
ORDER BY department
