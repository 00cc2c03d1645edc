-- personalEmail.address.startsWith("JOHN", false)
COALESCE(STARTS_WITH(LOWER("p"."personalEmail"."address"), LOWER('JOHN')), FALSE);
