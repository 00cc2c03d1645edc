-- exists E from xEvent where E.commerce.order.priceTotal > loyalty.points
COALESCE(COALESCE(__d_f17561531935dd12, 0) > 0, FALSE);
-- __d_f17561531935dd12
SELECT
  e._profile_id,
  COUNT(*) FILTER(WHERE
    COALESCE(e."commerce"."order"."priceTotal" > "p"."loyalty"."points", FALSE)) AS value
FROM events AS e
INNER JOIN profiles AS p
  ON p._profile_id = e._profile_id
WHERE
  COALESCE(e."commerce"."order"."priceTotal" > "p"."loyalty"."points", FALSE)
GROUP BY
  e._profile_id;
