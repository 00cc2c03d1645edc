-- identityMap.get("crm").exists(primary = true)
COALESCE(CASE WHEN NOT FILTER(`p`.`identityMap`['crm'], _i0 -> COALESCE(_i0.`primary` = TRUE, FALSE)) IS NULL THEN SIZE(FILTER(`p`.`identityMap`['crm'], _i0 -> COALESCE(_i0.`primary` = TRUE, FALSE))) END > 0, FALSE);
