-- homeAddress.country notIn ["US", "FR"]
COALESCE(NOT `p`.`homeAddress`.`country` IS NULL AND NOT (`p`.`homeAddress`.`country` IN ('US', 'FR')), FALSE);
