-- loyalty.points / 0 > 1
COALESCE(CAST("p"."loyalty"."points" AS DOUBLE) / NULLIF(CAST(0 AS DOUBLE), 0) > 1, FALSE);
