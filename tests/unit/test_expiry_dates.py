"""When earned points expire, for every expiry policy, in the program's time zone and across DST changes."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from patron.domain.calendar import add_months, expires_at
from patron.domain.engine import decide
from tests.unit.factories import custom, document, member, program, purchase

NEW_YORK = ZoneInfo("America/New_York")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def expiry_of(policy, earned_at, timezone="America/New_York"):
    doc = document(timezone=timezone, expiry=policy)
    return expires_at(doc.expiry, earned_at, ZoneInfo(timezone))


@pytest.mark.parametrize(
    ("earned", "days", "expected"),
    [
        (utc(2026, 1, 5, 12), 30, utc(2026, 2, 4, 12)),
        (utc(2026, 2, 28, 23, 59), 1, utc(2026, 3, 1, 23, 59)),
        (utc(2028, 2, 28, 10), 1, utc(2028, 2, 29, 10)),  # a leap day exists
        (utc(2026, 12, 31, 0), 365, utc(2027, 12, 31, 0)),
    ],
)
def test_after_days(earned, days, expected):
    assert expiry_of({"policy": "after", "days": days}, earned, timezone="UTC") == expected


@pytest.mark.parametrize(
    ("earned", "months", "expected"),
    [
        (utc(2026, 1, 31, 12), 1, utc(2026, 2, 28, 12)),  # Jan 31 + 1 month: the end of February
        (utc(2028, 1, 31, 12), 1, utc(2028, 2, 29, 12)),  # in a leap year, the 29th
        (utc(2026, 3, 31, 12), 1, utc(2026, 4, 30, 12)),
        (utc(2026, 1, 31, 12), 2, utc(2026, 3, 31, 12)),  # clamped per step from the earning day, not chained
        (utc(2028, 2, 29, 12), 12, utc(2029, 2, 28, 12)),
        (utc(2026, 11, 15, 12), 3, utc(2027, 2, 15, 12)),  # across a year end
        (utc(2026, 1, 5, 12), 24, utc(2028, 1, 5, 12)),
    ],
)
def test_after_months_clamps_to_the_last_day_of_the_month(earned, months, expected):
    assert expiry_of({"policy": "after", "months": months}, earned, timezone="UTC") == expected


def test_after_months_counts_months_on_the_local_calendar():
    # 03:00 UTC on 1 March is 22:00 on 28 February in New York: a month later is 28 March, 22:00 local (EDT),
    # not 1 April as counting in UTC would give
    expiry = expiry_of({"policy": "after", "months": 1}, utc(2026, 3, 1, 3))
    assert expiry == utc(2026, 3, 29, 2)
    assert expiry.astimezone(NEW_YORK).replace(tzinfo=None) == datetime(2026, 3, 28, 22)  # noqa: DTZ001


def test_after_months_keeps_the_local_time_of_day_across_a_dst_change():
    earned = utc(2026, 3, 1, 17)  # noon EST
    expiry = expiry_of({"policy": "after", "months": 1}, earned)
    assert expiry == utc(2026, 4, 1, 16)  # noon EDT
    assert expiry.astimezone(NEW_YORK).hour == 12


@pytest.mark.parametrize(
    ("period", "after_months", "earned", "expected"),
    [
        # month: the first instant of the next local month; midnight EST is 05:00 UTC, midnight EDT 04:00 UTC
        ("month", 0, utc(2026, 2, 10, 12), utc(2026, 3, 1, 5)),
        ("month", 0, utc(2026, 3, 15, 12), utc(2026, 4, 1, 4)),  # earned in EST, expires in EDT
        ("month", 0, utc(2026, 10, 20, 12), utc(2026, 11, 1, 4)),  # DST ends 1 Nov 2026 at 02:00: midnight is EDT
        ("month", 0, utc(2026, 11, 20, 12), utc(2026, 12, 1, 5)),
        # 02:00 UTC on 1 April is still 31 March in New York: the March period ends two hours later
        ("month", 0, utc(2026, 4, 1, 2), utc(2026, 4, 1, 4)),
        ("month", 12, utc(2026, 3, 15, 12), utc(2027, 4, 1, 4)),  # the end of March next year
        ("month", 1, utc(2026, 1, 31, 12), utc(2026, 3, 1, 5)),  # Jan 31 + 1 month is in February
        ("month", 0, utc(2026, 12, 31, 12), utc(2027, 1, 1, 5)),
        ("quarter", 0, utc(2026, 2, 10, 12), utc(2026, 4, 1, 4)),
        ("quarter", 0, utc(2026, 4, 1, 4), utc(2026, 7, 1, 4)),  # the first instant of Q2 belongs to Q2
        ("quarter", 0, utc(2026, 11, 20, 12), utc(2027, 1, 1, 5)),
        ("quarter", 3, utc(2026, 12, 31, 12), utc(2027, 4, 1, 4)),  # Dec 31 + 3 months: the end of Q1
        ("year", 0, utc(2026, 6, 1, 12), utc(2027, 1, 1, 5)),
        ("year", 0, utc(2027, 1, 1, 3), utc(2027, 1, 1, 5)),  # New Year's Eve in New York, 2026's period
        ("year", 12, utc(2026, 6, 1, 12), utc(2028, 1, 1, 5)),
    ],
)
def test_end_of_period(period, after_months, earned, expected):
    policy = {"policy": "end_of_period", "period": period, "after_months": after_months}
    expiry = expiry_of(policy, earned)
    assert expiry == expected
    local = expiry.astimezone(NEW_YORK)
    assert (local.day, local.hour, local.minute) == (1, 0, 0)  # always local midnight on the 1st
    assert expiry > earned


def test_end_of_period_in_a_zone_east_of_utc():
    # 23:30 UTC on 31 January is already 1 February in Tokyo: the lot belongs to February
    assert expiry_of({"policy": "end_of_period", "period": "month"}, utc(2026, 1, 31, 23, 30), "Asia/Tokyo") == utc(
        2026, 2, 28, 15
    )


def test_never_expires():
    assert expiry_of({"policy": "never"}, utc(2026, 1, 5, 12)) is None


def test_add_months_handles_negative_and_large_offsets():
    assert add_months(utc(2026, 3, 31), -1) == utc(2026, 2, 28)
    assert add_months(utc(2026, 1, 15), 120) == utc(2036, 1, 15)


def test_every_lot_an_event_creates_carries_its_expiry():
    compiled = program(
        timezone="America/New_York",
        pending_days=14,
        expiry={"policy": "end_of_period", "period": "quarter"},
        rules=[
            {"id": "base", "event": "purchase"},
            {"id": "instant", "event": "purchase", "points": {"fixed": 5}, "pending": False},
            {"id": "review", "event": "review", "points": {"fixed": 20}},
        ],
    )
    at = utc(2026, 3, 31, 23)  # 19:00 EDT on 31 March: the first quarter
    lots = decide(compiled, member(), purchase("10.00", at=at)).new_lots
    assert len(lots) == 2
    assert {lot.expires_at for lot in lots} == {utc(2026, 4, 1, 4)}
    # the return window does not move the expiry: it counts from when the points were earned
    assert {lot.available_at for lot in lots} == {at, at + timedelta(days=14)}
    (review,) = decide(compiled, member(), custom("review", at=at)).new_lots
    assert review.expires_at == utc(2026, 4, 1, 4)


def test_lots_of_a_never_expiring_program_have_no_expiry():
    compiled = program(rules=[{"id": "base", "event": "purchase"}])
    assert [lot.expires_at for lot in decide(compiled, member(), purchase("10")).new_lots] == [None]
