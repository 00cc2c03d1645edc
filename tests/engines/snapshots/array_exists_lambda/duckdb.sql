-- identityMap.get("crm").exists(primary = true)
COALESCE(LEN(LIST_FILTER("p"."identityMap"['crm'], LAMBDA _i0 : COALESCE(_i0."primary" = TRUE, FALSE))) > 0, FALSE);
