-- identityMap.email.isNotEmpty()
COALESCE(CASE WHEN NOT "p"."identityMap"['email'] IS NULL THEN LEN("p"."identityMap"['email']) END > 0, FALSE);
