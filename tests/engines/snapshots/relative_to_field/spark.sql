-- loyalty.joinDate occurs <= 1 month before _lastModifiedAt
COALESCE(`p`.`loyalty`.`joinDate` <= CAST(`p`.`_lastModifiedAt` AS TIMESTAMP) AND `p`.`loyalty`.`joinDate` >= (CAST(`p`.`_lastModifiedAt` AS TIMESTAMP) - INTERVAL '1' MONTH), FALSE);
