-- not (favoriteCategories.all(c => c = "outdoor"))
NOT (COALESCE(CASE WHEN NOT LIST_FILTER("p"."favoriteCategories", LAMBDA _i0 : NOT (COALESCE(_i0 = 'outdoor', FALSE))) IS NULL THEN LEN(LIST_FILTER("p"."favoriteCategories", LAMBDA _i0 : NOT (COALESCE(_i0 = 'outdoor', FALSE)))) END = 0, TRUE));
