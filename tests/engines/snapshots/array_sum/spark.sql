-- scores.sum() > 10
COALESCE(COALESCE(CASE WHEN SIZE(FILTER(`p`.`scores`, _a0 -> NOT _a0 IS NULL)) > 0 THEN AGGREGATE(`p`.`scores`, CAST(0 AS DECIMAL(38, 6)), (_a0_acc, _a0) -> _a0_acc + COALESCE(CAST(_a0 AS DECIMAL(38, 6)), CAST(0 AS DECIMAL(38, 6)))) END, CAST(0 AS DECIMAL(38, 6))) > 10, FALSE);
