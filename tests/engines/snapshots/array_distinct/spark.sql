-- favoriteCategories.distinct().count() = 1
COALESCE(COALESCE(CASE WHEN NOT ARRAY_DISTINCT(FILTER(`p`.`favoriteCategories`, _d0 -> NOT _d0 IS NULL)) IS NULL THEN SIZE(ARRAY_DISTINCT(FILTER(`p`.`favoriteCategories`, _d0 -> NOT _d0 IS NULL))) END, 0) = 1, FALSE);
