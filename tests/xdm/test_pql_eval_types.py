"""`openseg pql eval` types its files as ingestion does and checks against standard XDM plus their fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from openseg.cli import app


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records))
    return path


def person(name: str, birth: str, interests: list[str]) -> dict[str, Any]:
    return {"_id": name, "identityMap": {"email": [{"id": f"{name}@x"}]},
            "person": {"birthDate": birth, "birthYear": int(birth[:4])},
            "workAddress": {"country": "France" if name != "bob" else "Spain"},
            "_acme": {"interests": interests}}


def evaluate(tmp_path: Path, expression: str, profiles: list[dict[str, Any]],
             events: list[dict[str, Any]] | None = None) -> tuple[int, str]:
    args = ["pql", "eval", expression, "--profiles", str(write(tmp_path / "p.jsonl", profiles)),
            "--now", "2026-01-20T00:00:00Z"]
    if events is not None:
        args += ["--events", str(write(tmp_path / "e.jsonl", events))]
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


PEOPLE = [person("ann", "1988-06-14", ["golf"]), person("bob", "1975-06-02", ["sailing"]),
          person("cat", "1990-03-15", ["golf", "wine"])]


def test_dates_from_json_are_dates(tmp_path: Path) -> None:
    assert evaluate(tmp_path, "person.birthDate.getMonth() = 6", PEOPLE) == (0, "ann\nbob\n")
    assert evaluate(tmp_path, "person.birthDate occurs between date(1985, 1, 1) and date(1990, 12, 31)",
                    PEOPLE) == (0, "ann\ncat\n")


def test_standard_and_tenant_fields_of_the_files_are_known(tmp_path: Path) -> None:
    expression = 'person.birthYear >= 1980 and workAddress.country = "France" and _acme.interests.includes("wine")'
    assert evaluate(tmp_path, expression, PEOPLE) == (0, "cat\n")
    code, output = evaluate(tmp_path, '_acme.interest.includes("golf")', PEOPLE)
    assert code == 2 and "unknown field _acme.interest (did you mean _acme.interests?)" in output


def test_event_date_times_are_timestamps(tmp_path: Path) -> None:
    events = [{"_id": "e1", "eventType": "commerce.purchases", "timestamp": "2026-01-10T00:00:00+01:00",
               "identityMap": {"email": [{"id": "bob@x"}]},
               "commerce": {"order": {"priceTotal": 12.5}}, "_acme": {"sentAt": "2026-01-10T00:00:00Z"}}]
    expression = 'xEvent[timestamp.getDayOfMonth() = 9 and commerce.order.priceTotal > 10].count() = 1'
    assert evaluate(tmp_path, expression, PEOPLE, events) == (0, "bob\n")


def test_a_value_that_does_not_fit_its_standard_type_is_named(tmp_path: Path) -> None:
    bad = person("dan", "1980-01-01", [])
    bad["person"]["birthDate"] = "1980/01/01"
    code, output = evaluate(tmp_path, "person.birthYear > 0", [*PEOPLE, bad])
    assert code == 2
    assert output == (f"{tmp_path / 'p.jsonl'}:4: field 'person.birthDate' must be a date (YYYY-MM-DD) "
                      '(its XDM type), not "1980/01/01"\n')
