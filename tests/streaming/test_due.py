"""The next time a continuous segment's answer changes with no new data (``segmentation/streaming_due.py``):
never late, over the PQL corpus and generated profiles."""

from __future__ import annotations

import datetime as dt
from typing import Any

from openseg.pql import parse
from openseg.pql.to_python import compile_timed
from openseg.segmentation.streaming_due import TICK, next_change, time_dependence
from tests.pql.datagen import AS_OF, generate, load_corpus


def test_the_next_change_is_never_late_and_finds_the_changes_over_the_corpus() -> None:
    dataset = generate(seed=11, n_profiles=40)
    events = dataset.events_by_profile()
    late, found, constant = [], 0, 0
    for entry in load_corpus():
        node = parse(entry.text)
        predicate, dependence = compile_timed(node), time_dependence(node)
        for at in (AS_OF, AS_OF + dt.timedelta(minutes=37, seconds=5)):
            for profile in dataset.profiles:
                history = events[profile["_profile_id"]]
                value = predicate(profile, history, at)
                due = next_change(predicate, dependence, profile, history, at)
                if due is None:
                    # Nothing it holds can change the value: not in a minute, a day or a year.
                    probes = [at + dt.timedelta(minutes=1), at + dt.timedelta(days=1), at + dt.timedelta(days=365)]
                    constant += 1
                else:
                    assert due > at
                    middle = at + (due - TICK - at) / 2
                    probes = [p for p in (middle, due - TICK - dt.timedelta(microseconds=1)) if p > at]
                    found += predicate(profile, history, due) != value
                late += [(entry.segment_id, profile["_profile_id"], at, p) for p in probes
                         if predicate(profile, history, p) != value]
    assert late == []
    assert found >= 20 and constant >= 20


def test_a_window_passing_is_found_a_tick_after_it_closes() -> None:
    node = parse('homeAddress.country = "US" and xEvent[eventType = "buy" and timestamp occurs <= 1 hours before now]')
    predicate, dependence = compile_timed(node), time_dependence(node)
    profile = {"homeAddress": {"country": "US"}}
    bought = [{"eventType": "buy", "timestamp": AS_OF - dt.timedelta(minutes=50)},
              {"eventType": "buy", "timestamp": AS_OF - dt.timedelta(minutes=20)}]
    assert next_change(predicate, dependence, profile, bought, AS_OF) == AS_OF + dt.timedelta(minutes=40) + TICK
    # Out, with nothing ahead: no recheck; a profile-only expression never has one.
    assert next_change(predicate, dependence, profile, bought, AS_OF + dt.timedelta(hours=1)) is None
    # Times the expression does not read (system fields, the membership) are not even probed.
    later = AS_OF + dt.timedelta(hours=1)
    probes: list[dt.datetime] = []

    def counted(profile: Any, events: Any, at: dt.datetime) -> bool:
        probes.append(at)
        return predicate(profile, events, at)

    stamped = {**profile, "_lastModifiedAt": later, "segmentMembership": {"ups": {"x": {"lastQualificationTime": later}}}}
    assert next_change(counted, dependence, stamped, [{**bought[0], "_ingestTime": later}], later, False) is None
    assert probes == []
    assert time_dependence(parse('homeAddress.country = "US"')) is None


def test_a_later_window_opening_enters_the_profile_when_it_is_due() -> None:
    node = parse('xEvent[eventType = "signup" and timestamp occurs > 30 minutes before now and '
                 'timestamp occurs <= 1 days before now]')
    predicate, dependence = compile_timed(node), time_dependence(node)
    signup = [{"eventType": "signup", "timestamp": AS_OF - dt.timedelta(minutes=10)}]
    assert predicate({}, signup, AS_OF) is False
    due = next_change(predicate, dependence, {}, signup, AS_OF)
    assert due == AS_OF + dt.timedelta(minutes=20) + TICK and predicate({}, signup, due) is True


def test_calendar_shapes_are_rechecked_at_the_boundary() -> None:
    node = parse('xEvent[eventType = "visit" and timestamp occurs today]')
    predicate, dependence = compile_timed(node), time_dependence(node)
    visit = [{"eventType": "visit", "timestamp": AS_OF - dt.timedelta(hours=1)}]
    midnight = dt.datetime(2024, 6, 16, tzinfo=dt.UTC)
    assert next_change(predicate, dependence, {}, visit, AS_OF) == midnight + TICK
    # Not a visitor today and nothing ahead: a recheck at the horizon, as the calendar turns forever.
    assert next_change(predicate, dependence, {}, [], AS_OF) == AS_OF + dependence.horizon  # type: ignore[union-attr]


def test_the_edge_gets_the_answers_a_timed_evaluation_gets_without_the_due_times() -> None:
    """``evaluate`` (the edge's) answers as ``evaluate_timed`` (the streamer's) does for every profile and corpus
    definition, without looking for the next change."""
    from openseg.segmentation.streaming import CompiledSegments, ContinuousDefinition, evaluate, evaluate_timed

    dataset = generate(seed=12, n_profiles=30)
    events = dataset.events_by_profile()
    definitions = [ContinuousDefinition(entry.segment_id, 1, "policy", entry.text) for entry in load_corpus()]
    compiled = CompiledSegments()
    timed_any = False
    for profile in dataset.profiles:
        history = events[profile["_profile_id"]]
        timed = evaluate_timed(definitions, compiled, profile, history, {}, AS_OF)
        assert evaluate(definitions, compiled, profile, history, {}, AS_OF) == timed.answers
        timed_any = timed_any or bool(timed.due)
    assert timed_any  # the corpus holds windows whose due times the edge does not need
