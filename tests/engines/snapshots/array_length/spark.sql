-- favoriteCategories.count() >= 3
COALESCE(COALESCE(CASE WHEN NOT `p`.`favoriteCategories` IS NULL THEN SIZE(`p`.`favoriteCategories`) END, 0) >= 3, FALSE);
