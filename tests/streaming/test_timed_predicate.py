"""The Python predicate compiled once with the evaluation time as an input (streaming) gives, at every time,
what the predicate compiled for that time gives (batch explanations, the differential tests)."""

from __future__ import annotations

import datetime as dt

from openseg.pql import parse
from openseg.pql.to_python import compile_predicate, compile_timed
from tests.pql.datagen import AS_OF, generate, load_corpus

#: Times around the generated data's: the same instant, an hour and a day later, a month earlier, a new year.
TIMES = (AS_OF, AS_OF + dt.timedelta(hours=1), AS_OF + dt.timedelta(days=1), AS_OF - dt.timedelta(days=31),
         dt.datetime(2025, 1, 1, 0, 0, 1, tzinfo=dt.UTC))


def test_a_timed_predicate_agrees_with_the_fixed_time_one_at_every_time_over_the_corpus() -> None:
    dataset = generate(seed=7, n_profiles=60)
    events = dataset.events_by_profile()
    differences = []
    changed_with_time = 0
    for entry in load_corpus():
        node = parse(entry.text)
        timed = compile_timed(node)
        answers = set()
        for at in TIMES:
            fixed = compile_predicate(node, at)
            for profile in dataset.profiles:
                expected = fixed(profile, events[profile["_profile_id"]])
                if timed(profile, events[profile["_profile_id"]], at) != expected:
                    differences.append((entry.segment_id, at, profile["_profile_id"]))
                answers.add((profile["_profile_id"], expected, at == AS_OF))
        # Expressions whose value moves with time show the time really is an input.
        by_time = {(p, now) for p, value, now in answers if value}
        if {p for p, now in by_time if now} != {p for p, now in by_time if not now}:
            changed_with_time += 1
    assert differences == []
    assert changed_with_time >= 10


def test_one_compiled_predicate_answers_differently_as_time_passes() -> None:
    timed = compile_timed(parse('select e from xEvent where e.eventType = "a" and e.timestamp occurs <= 1 hours '
                                'before now'))
    event = {"eventType": "a", "timestamp": AS_OF - dt.timedelta(minutes=30)}
    assert timed({}, [event], AS_OF) is True
    assert timed({}, [event], AS_OF + dt.timedelta(minutes=31)) is False
    birthday = compile_timed(parse("person.birthDate.age() >= 18 and currentYear() = 2024"))
    person = {"person": {"birthDate": dt.date(2006, 6, 16)}}
    assert birthday(person, [], AS_OF) is False
    assert birthday(person, [], AS_OF + dt.timedelta(days=1)) is True
    assert birthday(person, [], dt.datetime(2025, 6, 16, tzinfo=dt.UTC)) is False
