-- not (favoriteCategories.all(c => c = "outdoor"))
NOT (COALESCE(CASE WHEN NOT FILTER(`p`.`favoriteCategories`, _i0 -> NOT (COALESCE(_i0 = 'outdoor', FALSE))) IS NULL THEN SIZE(FILTER(`p`.`favoriteCategories`, _i0 -> NOT (COALESCE(_i0 = 'outdoor', FALSE)))) END = 0, TRUE));
