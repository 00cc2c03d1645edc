-- not (homeAddress.country = "US")
NOT (COALESCE(`p`.`homeAddress`.`country` = 'US', FALSE));
