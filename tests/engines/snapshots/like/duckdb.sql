-- person.name.firstName like "J_hn%"
COALESCE(REGEXP_MATCHES("p"."person"."name"."firstName", '(?s)^J.hn.*$'), FALSE);
