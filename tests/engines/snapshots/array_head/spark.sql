-- favoriteCategories.head() = "outdoor"
COALESCE(TRY_ELEMENT_AT(`p`.`favoriteCategories`, 1) = 'outdoor', FALSE);
