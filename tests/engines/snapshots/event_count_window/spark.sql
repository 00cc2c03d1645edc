-- xEvent[eventType = "commerce.purchases" and timestamp occurs <= 30 days before now].count() >= 3
COALESCE(COALESCE(__d_4970039dc904c055, 0) >= 3, FALSE);
-- __d_4970039dc904c055
SELECT
  e._profile_id,
  COUNT(*) FILTER(WHERE
    COALESCE(e.`eventType` = 'commerce.purchases', FALSE)
    AND COALESCE(
      e.`timestamp` >= CAST('2024-05-16 12:00:00.000000' AS TIMESTAMP)
      AND e.`timestamp` <= CAST('2024-06-15 12:00:00.000000' AS TIMESTAMP),
      FALSE
    )) AS value
FROM events AS e
WHERE
  COALESCE(e.`eventType` = 'commerce.purchases', FALSE)
  AND COALESCE(
    e.`timestamp` >= CAST('2024-05-16 12:00:00.000000' AS TIMESTAMP)
    AND e.`timestamp` <= CAST('2024-06-15 12:00:00.000000' AS TIMESTAMP),
    FALSE
  )
GROUP BY
  e._profile_id;
