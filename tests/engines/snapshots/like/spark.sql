-- person.name.firstName like "J_hn%"
COALESCE(`p`.`person`.`name`.`firstName` RLIKE '(?s)^J.hn.*$', FALSE);
