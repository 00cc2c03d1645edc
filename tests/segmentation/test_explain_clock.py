"""An explanation says a membership may differ because of the evaluation time only for expressions that read it."""

from __future__ import annotations

import pytest

from openseg.pql import parse
from openseg.segmentation.explain import reads_the_clock


@pytest.mark.parametrize(("text", "reads"), [
    ("loyalty.joinDate occurs before this month", True),
    ("loyalty.joinDate occurs after last week", True),
    ("person.birthDate occurs <= 2 days after last month", True),
    ("xEvent[timestamp occurs < 8 days before now].count() > 0", True),
    ('homeAddress.countryCode = "US"', False),
    ('loyalty.joinDate occurs before date("2024-01-01")', False),
])
def test_an_explanation_knows_which_expressions_read_the_clock(text: str, reads: bool) -> None:
    # A calendar period as a window's anchor moves with the evaluation time, like `now`.
    assert reads_the_clock(parse(text)) is reads
