-- not (favoriteCategories.all(c => c = "outdoor"))
NOT (COALESCE(LEN(LIST_FILTER("p"."favoriteCategories", LAMBDA _i0 : NOT (COALESCE(_i0 = 'outdoor', FALSE)))) = 0, TRUE));
