-- favoriteCategories.distinct().count() = 1
COALESCE(COALESCE(LEN(LIST_FILTER("p"."favoriteCategories", LAMBDA _d0, _d0_n : NOT _d0 IS NULL AND LIST_POSITION("p"."favoriteCategories", _d0) = _d0_n)), 0) = 1, FALSE);
