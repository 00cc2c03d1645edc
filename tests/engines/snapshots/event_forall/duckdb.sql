-- forall E from xEvent where E.eventType = "commerce.purchases"
COALESCE(COALESCE(__d_e0144f180741465c, 0) = 0, FALSE);
-- __d_e0144f180741465c
SELECT
  e._profile_id,
  COUNT(*) FILTER(WHERE
    NOT (
      COALESCE(e."eventType" = 'commerce.purchases', FALSE)
    )) AS value
FROM events AS e
WHERE
  NOT (
    COALESCE(e."eventType" = 'commerce.purchases', FALSE)
  )
GROUP BY
  e._profile_id;
