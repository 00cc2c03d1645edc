"""PQL's one regex dialect: what it accepts, what it refuses (with the position), and that the three
evaluators agree on it (the differential corpus holds the matching examples)."""

from __future__ import annotations

import pytest

from openseg.pql import check, parse
from openseg.pql.errors import PqlError
from openseg.pql.regex_dialect import compile_python, problem

INSIDE = [
    "^[a-z]+[0-9]+@example\\.com$", "[0-9]{3}", "@(.+)$", "(x)?@", "(?i)^john", "a{2,}?", "a{1,3}", "\\x41",
    "\\d\\D\\w\\W\\s\\S\\b\\B", "\\n\\r\\t\\f", "[^\\]a-z\\-]", "[\\d\\s]", "a|b|(?:c)", "}", "a+?b??c*?", "",
]

OUTSIDE = [
    ("(", "missing ), unterminated subpattern at position 0"),
    ("a(?=b)", "'(?=' (lookaround) is not supported at position 1"),
    ("a(?<!b)", "'(?<!' (lookaround) is not supported at position 1"),
    ("(?>a)", "'(?>' (atomic group) is not supported at position 0"),
    ("(\\w)\\1", "'\\1' (backreferences) is not supported at position 4"),
    ("(?P<n>a)", "'(?P' (named group) is not supported at position 0"),
    ("(?<n>a)", "'(?<' (named group) is not supported at position 0"),
    ("a*+", "possessive quantifiers ('*+', '++', '?+') are not supported at position 2"),
    ("\\Aabc", "'\\A' (start of text) is not supported at position 0"),
    ("abc\\Z", "'\\Z' (end of text) is not supported at position 3"),
    ("\\p{L}", "'\\p' (Unicode class) is not supported at position 0"),
    ("\\Qa.b\\E", "'\\Q' (quoting) is not supported at position 0"),
    ("\\u00e9", "'\\u' (Unicode escape) is not supported at position 0"),
    ("\\v", "'\\v' (vertical tab or whitespace) is not supported at position 0"),
    ("a\\ b", "'\\ ' (an escape the engines read differently) is not supported at position 1"),
    ("[[:alpha:]]", "'[' inside a class (nested classes, [:alpha:]) is not supported; write '\\[' at position 1"),
    ("[a-z&&[^b]]", "'&&' inside a class (class intersection) is not supported at position 4"),
    ("[]a]", "a ']' first in a class is read differently by the engines; write '\\]' at position 1"),
    ("[\\b]", "'\\b' (word boundary inside a class) is not supported at position 1"),
    ("x{,3}", "a '{' that is not a repetition {n}, {n,} or {n,m} must be written '\\{' at position 1"),
    ("a{1001}", "a repetition count above 1000 is not supported at position 1"),
    ("a(?i)b", "'(?i)' is supported only at the start of the pattern at position 1"),
    ("(?s).", "'(?' flags other than a leading '(?i)' are not supported at position 0"),
    ("(?i)élodie", "'(?i)' with the non-ASCII letter 'é' is not supported (the engines fold its case "
                   "differently) at position 4"),
    ("*a", "'*' has nothing to repeat at position 0"),
    ("a**", "a quantifier cannot follow another at position 2"),
    ("[a-z", "the class is not closed with ']' at position 0"),
    ("ab\\", "a '\\' ends the pattern at position 2"),
]


@pytest.mark.parametrize("pattern", INSIDE)
def test_patterns_inside_the_dialect(pattern: str) -> None:
    assert problem(pattern) is None


@pytest.mark.parametrize(("pattern", "message"), OUTSIDE)
def test_patterns_outside_the_dialect_name_what_and_where(pattern: str, message: str) -> None:
    found = problem(pattern)
    assert found is not None and str(found) == message


def test_python_reads_classes_as_ascii_like_re2_and_java() -> None:
    assert compile_python("^\\w+$").match("Müller") is None
    assert compile_python("\\d").search("٣") is None


def test_the_check_error_names_the_pattern_and_its_position() -> None:
    text = 'person.name.firstName.matches("(?P<n>J)")'
    with pytest.raises(PqlError) as caught:
        check(parse(text))
    error, col = caught.value, text.index('"') + 1
    assert (error.line, error.col) == (1, col)
    assert str(error).splitlines()[0] == (
        f"line 1, col {col}: the regex of matches() \"(?P<n>J)\" is not a regular expression "
        "the engines can run alike: '(?P' (named group) is not supported at position 0 "
        "(PQL's regex dialect: docs/pql.md)")


@pytest.mark.parametrize(("group", "message"), [
    ("11", 'regexGroup() has no group 11 in "^([a-z]+)@": the group must be 0 (the whole match) to 1'),
    ("2", 'regexGroup() has no group 2 in "^([a-z]+)@": the group must be 0 (the whole match) to 1'),
    ("-1", 'regexGroup() has no group -1 in "^([a-z]+)@": the group must be 0 (the whole match) to 1'),
    ("loyalty.tier.length()", "the group of regexGroup() must be written as a whole number, e.g. 1"),
])
def test_a_regex_group_the_pattern_does_not_have_is_refused_at_the_group(group: str, message: str) -> None:
    # Found by tests/pql/test_fuzz.py: DuckDB failed on group 11 ("Group index must be between 0 and 9"), read a
    # group past the pattern's as '' where Python read it as missing, and could not bind a computed group.
    text = f'personalEmail.address.regexGroup("^([a-z]+)@", {group}) = "john"'
    with pytest.raises(PqlError) as caught:
        check(parse(text))
    assert (caught.value.line, caught.value.col) == (1, text.index(group) + 1)
    assert str(caught.value).splitlines()[0] == f"line 1, col {text.index(group) + 1}: {message}"


def test_regex_group_reads_groups_zero_to_nine_of_a_literal_pattern() -> None:
    eleven = "".join(f"({letter})" for letter in "abcdefghijk")
    check(parse(f'personalEmail.address.regexGroup("{eleven}", 9) = "i"'))
    check(parse('personalEmail.address.regexGroup("^[a-z]+", 0) = "john"'))
    with pytest.raises(PqlError, match="regexGroup\\(\\) reads groups 0 to 9 only, not 10"):
        check(parse(f'personalEmail.address.regexGroup("{eleven}", 10) = "j"'))
    with pytest.raises(PqlError, match='the regex of regexGroup\\(\\) must be written as a string, e.g. "@\\(\\.\\+\\)\\$"'):
        check(parse("personalEmail.address.regexGroup(person.name.firstName, 1) = \"john\""))
