-- identityMap.containsKey("email")
COALESCE(MAP_CONTAINS("p"."identityMap", 'email'), FALSE);
