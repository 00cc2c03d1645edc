-- identityMap.get("crm").exists(primary = true)
COALESCE(CASE WHEN NOT LIST_FILTER("p"."identityMap"['crm'], LAMBDA _i0 : COALESCE(_i0."primary" = TRUE, FALSE)) IS NULL THEN LEN(LIST_FILTER("p"."identityMap"['crm'], LAMBDA _i0 : COALESCE(_i0."primary" = TRUE, FALSE))) END > 0, FALSE);
