-- identityMap.containsKey("email")
COALESCE(MAP_CONTAINS_KEY(`p`.`identityMap`, 'email'), FALSE);
