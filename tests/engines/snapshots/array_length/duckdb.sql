-- favoriteCategories.count() >= 3
COALESCE(COALESCE(LEN("p"."favoriteCategories"), 0) >= 3, FALSE);
