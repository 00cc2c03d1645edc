-- identityMap.email.isNotEmpty()
COALESCE(LEN("p"."identityMap"['email']) > 0, FALSE);
