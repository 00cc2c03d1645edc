-- chain(xEvent, timestamp, [A: WHAT(eventType = "commerce.productViews"), C: !WHAT(commerce.order.priceTotal > $1.loyalty.points), B: WHAT(eventType = "commerce.purchases")])
COALESCE(__d_d890498468cf8e0a, FALSE);
-- __d_d890498468cf8e0a
SELECT
  _profile_id,
  TRUE AS value
FROM (
  SELECT
    s0._profile_id
  FROM events AS s0
  INNER JOIN profiles AS p
    ON p._profile_id = s0._profile_id
  INNER JOIN events AS s1
    ON s1._profile_id = s0._profile_id
    AND (
      NOT s1.`timestamp` IS NULL
      AND s1.`eventType` = 'commerce.purchases'
      AND s1.`timestamp` > s0.`timestamp`
    )
  LEFT JOIN events AS n1
    ON n1._profile_id = s0._profile_id
    AND NOT n1.`timestamp` IS NULL
    AND n1.`commerce`.`order`.`priceTotal` > `p`.`loyalty`.`points`
    AND n1.`timestamp` > s0.`timestamp`
    AND n1.`timestamp` < s1.`timestamp`
  WHERE
    NOT s0.`timestamp` IS NULL AND s0.`eventType` = 'commerce.productViews'
  GROUP BY
    s0._profile_id,
    s0._id,
    s0.`timestamp`,
    s1._id,
    s1.`timestamp`
  HAVING
    COUNT(n1.`timestamp`) = 0
) AS chain_matches
GROUP BY
  _profile_id;
