-- personalEmail.address.startsWith("JOHN", false)
COALESCE(STARTSWITH(LOWER(`p`.`personalEmail`.`address`), LOWER('JOHN')), FALSE);
