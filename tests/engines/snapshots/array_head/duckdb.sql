-- favoriteCategories.head() = "outdoor"
COALESCE(LIST_EXTRACT("p"."favoriteCategories", 1) = 'outdoor', FALSE);
