"""What the database is given as JSON text: the same documents the standard library wrote, read back equal."""

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from psycopg.adapt import AdaptersMap
from psycopg.types.json import set_json_dumps

from patron.store import json_text


def test_documents_read_back_as_the_standard_library_wrote_them() -> None:
    receipt = {
        "member_id": "m-ü-周",
        "points": 120,
        "notes": ['a "quoted" note\nwith a line break', "\x01"],
        "rules": [{"rule_id": "base", "fired": True, "points": None}],
        7: "an integer key",
    }
    assert json.loads(json_text.dumps(receipt)) == json.loads(json.dumps(receipt))
    assert json_text.loads(json_text.dumps(receipt)) == json.loads(json.dumps(receipt))


def test_integers_beyond_64_bits_are_still_written() -> None:
    huge = {"quantity": 2**70, "negative": -(2**65)}
    assert json.loads(json_text.dumps(huge)) == huge
    assert json.loads(json_text.dumps_plain(huge)) == huge


def test_column_documents_refuse_what_json_refuses() -> None:
    @dataclass
    class Stray:
        points: int

    for value in (Decimal("1.50"), datetime(2026, 1, 1, tzinfo=UTC), Stray(1), {1, 2}):
        with pytest.raises(TypeError):
            json_text.dumps({"value": value})


def test_bulk_rows_write_money_and_times_as_text() -> None:
    eastern = timezone(timedelta(hours=8))
    moment = datetime(2026, 3, 1, 9, 30, 0, 250, tzinfo=eastern)
    row = {"total": Decimal("12.30"), "at": moment, "day": date(2026, 3, 1)}
    assert json.loads(json_text.dumps_plain(row)) == {
        "total": "12.30",
        "at": moment.isoformat(),
        "day": "2026-03-01",
    }


def test_the_drivers_json_adapter_takes_our_writer_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:

    set_json_dumps(json_text.dumps, AdaptersMap())
    assert "closure" not in caplog.text
