-- xEvent.sum(commerce.order.priceTotal) >= 100.01
COALESCE(COALESCE(__d_8377321f03718427, CAST(0 AS DECIMAL(38, 6))) >= CAST(100.01 AS DOUBLE), FALSE);
-- __d_8377321f03718427
SELECT
  e._profile_id,
  SUM(CAST(e.`commerce`.`order`.`priceTotal` AS DECIMAL(38, 6))) AS value
FROM events AS e
GROUP BY
  e._profile_id;
