-- chain(xEvent, timestamp, [C0: WHAT(eventType = "commerce.productViews"), C1: WHAT(eventType = "commerce.purchases") not, C2: WHAT(eventType = "commerce.checkouts") WHEN(<= 7 days after C0)])
COALESCE(__d_b1e67650447d4d5c, FALSE);
-- __d_b1e67650447d4d5c
SELECT
  _profile_id,
  TRUE AS value
FROM (
  SELECT
    s0._profile_id
  FROM events AS s0
  INNER JOIN events AS s1
    ON s1._profile_id = s0._profile_id
    AND (
      NOT s1."timestamp" IS NULL
      AND (
        s1."eventType" = 'commerce.checkouts'
        AND (
          s1."timestamp" >= CAST(s0."timestamp" AS TIMESTAMP)
          AND s1."timestamp" <= (
            CAST(s0."timestamp" AS TIMESTAMP) + INTERVAL '7' DAY
          )
        )
      )
      AND s1."timestamp" > s0."timestamp"
    )
  LEFT JOIN events AS n1
    ON n1._profile_id = s0._profile_id
    AND NOT n1."timestamp" IS NULL
    AND n1."eventType" = 'commerce.purchases'
    AND n1."timestamp" > s0."timestamp"
    AND n1."timestamp" < s1."timestamp"
  WHERE
    NOT s0."timestamp" IS NULL AND s0."eventType" = 'commerce.productViews'
  GROUP BY
    s0._profile_id,
    s0._id,
    s0."timestamp",
    s1._id,
    s1."timestamp"
  HAVING
    COUNT(n1."timestamp") = 0
) AS chain_matches
GROUP BY
  _profile_id;
