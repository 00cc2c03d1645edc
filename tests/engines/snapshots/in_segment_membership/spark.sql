-- inSegment("seg-gold")
COALESCE(COALESCE(__d_3784a302efb4b9b6, 0) > 0, FALSE);
-- __d_3784a302efb4b9b6
SELECT
  m._profile_id,
  COUNT(*) FILTER(WHERE
    (
      m.in_0 & 2
    ) <> 0) AS value
FROM membership AS m
WHERE
  (
    m.in_0 & 2
  ) <> 0
GROUP BY
  m._profile_id;
