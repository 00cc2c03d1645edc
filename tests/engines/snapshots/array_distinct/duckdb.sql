-- favoriteCategories.distinct().count() = 1
COALESCE(COALESCE(CASE WHEN NOT LIST_FILTER("p"."favoriteCategories", LAMBDA _d0, _d0_n : NOT _d0 IS NULL AND LIST_POSITION("p"."favoriteCategories", _d0) = _d0_n) IS NULL THEN LEN(LIST_FILTER("p"."favoriteCategories", LAMBDA _d0, _d0_n : NOT _d0 IS NULL AND LIST_POSITION("p"."favoriteCategories", _d0) = _d0_n)) END, 0) = 1, FALSE);
