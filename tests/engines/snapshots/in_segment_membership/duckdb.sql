-- inSegment("seg-gold")
COALESCE(COALESCE(__d_95be8569fc6ad8bd, 0) > 0, FALSE);
-- __d_95be8569fc6ad8bd
SELECT
  m._profile_id,
  COUNT(*) FILTER(WHERE
    m.segment_id = 'seg-gold' AND m.status IN ('realized', 'existing')) AS value
FROM membership AS m
WHERE
  m.segment_id = 'seg-gold' AND m.status IN ('realized', 'existing')
GROUP BY
  m._profile_id;
