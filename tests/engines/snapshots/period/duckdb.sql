-- loyalty.joinDate occurs last week
COALESCE("p"."loyalty"."joinDate" >= CAST('2024-06-03 00:00:00.000000' AS TIMESTAMP) AND "p"."loyalty"."joinDate" < CAST('2024-06-10 00:00:00.000000' AS TIMESTAMP), FALSE);
