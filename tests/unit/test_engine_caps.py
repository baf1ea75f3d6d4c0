"""Caps: at most so many points or firings per member per day, week, month or lifetime, in the program's zone."""

from datetime import UTC, datetime

import pytest

from patron.domain.engine import Usage, UsageIncrement, decide
from tests.unit.factories import custom, member, program, purchase, signup

NEW_YORK = "America/New_York"


def capped(*caps, timezone="UTC", points=20, event="review"):
    return program(
        timezone=timezone,
        rules=[{"id": "r", "event": event, "points": {"fixed": points}, "caps": list(caps)}],
    )


@pytest.mark.parametrize(
    ("period", "moment", "key"),
    [
        # 03:00 UTC on Tuesday the 6th is still Monday the 5th, 22:00, in New York
        ("day", datetime(2026, 1, 6, 3, 0, tzinfo=UTC), "day:2026-01-05"),
        ("day", datetime(2026, 1, 6, 5, 0, tzinfo=UTC), "day:2026-01-06"),
        # 02:00 UTC on Monday the 12th is Sunday evening in New York: ISO week 2, not 3
        ("week", datetime(2026, 1, 12, 2, 0, tzinfo=UTC), "week:2026-W02"),
        ("week", datetime(2026, 1, 12, 6, 0, tzinfo=UTC), "week:2026-W03"),
        # ISO weeks cross years: 1 January 2027 (a Friday) belongs to 2026-W53
        ("week", datetime(2027, 1, 1, 17, 0, tzinfo=UTC), "week:2026-W53"),
        ("month", datetime(2026, 2, 1, 3, 0, tzinfo=UTC), "month:2026-01"),
        ("month", datetime(2026, 2, 1, 6, 0, tzinfo=UTC), "month:2026-02"),
        ("lifetime", datetime(2026, 2, 1, 6, 0, tzinfo=UTC), "lifetime"),
    ],
)
def test_cap_periods_are_counted_in_the_program_time_zone(period, moment, key):
    compiled = capped({"period": period, "max_times": 1}, timezone=NEW_YORK)
    first = decide(compiled, member(), custom("review", at=moment))
    assert first.usage == (UsageIncrement("r", key, 1, 20),)
    again = decide(compiled, member(usage={("r", key): Usage(1, 20)}), custom("review", at=moment))
    assert again.points == 0
    assert again.usage == ()
    (outcome,) = again.outcomes
    assert (outcome.fired, outcome.reason) == (False, f"cap reached: 1 time(s) per {period}")


def test_usage_in_another_period_does_not_count():
    compiled = capped({"period": "day", "max_times": 1}, timezone=NEW_YORK)
    yesterday = member(usage={("r", "day:2026-01-04"): Usage(5, 100)})
    assert decide(compiled, yesterday, custom("review", at=datetime(2026, 1, 6, 3, 0, tzinfo=UTC))).points == 20


def test_usage_of_another_rule_does_not_count():
    compiled = capped({"period": "lifetime", "max_times": 1})
    assert decide(compiled, member(usage={("other", "lifetime"): Usage(9, 900)}), custom("review")).points == 20


@pytest.mark.parametrize(("times_so_far", "earns"), [(0, 20), (2, 20), (3, 0), (7, 0)])
def test_max_times(times_so_far, earns):
    compiled = capped({"period": "week", "max_times": 3})
    state = member(usage={("r", "week:2026-W02"): Usage(times_so_far, times_so_far * 20)})
    assert decide(compiled, state, custom("review")).points == earns


@pytest.mark.parametrize(
    ("points_so_far", "earns", "fired", "reason"),
    [
        (0, 10, True, "fired"),
        (20, 10, True, "fired"),  # exactly reaches the cap
        (25, 5, True, "capped at 30 points per month"),  # partial: what is left under the cap
        (29, 1, True, "capped at 30 points per month"),
        (30, 0, False, "cap reached: 30 points per month"),
        (45, 0, False, "cap reached: 30 points per month"),  # usage above the cap (an older, looser version)
    ],
)
def test_max_points_caps_partially(points_so_far, earns, fired, reason):
    compiled = capped({"period": "month", "max_points": 30}, points=10)
    state = member(usage={("r", "month:2026-01"): Usage(points_so_far // 10, points_so_far)})
    decision = decide(compiled, state, custom("review"))
    assert decision.points == earns
    (outcome,) = decision.outcomes
    assert (outcome.fired, outcome.points, outcome.reason) == (fired, earns, reason)
    assert decision.usage == ((UsageIncrement("r", "month:2026-01", 1, earns),) if fired else ())


def test_max_points_caps_purchase_points_in_the_lot_too():
    compiled = program(rules=[{"id": "r", "event": "purchase", "caps": [{"period": "day", "max_points": 100}]}])
    state = member(usage={("r", "day:2026-01-05"): Usage(1, 60)})
    decision = decide(compiled, state, purchase("250.00"))
    assert decision.points == 40
    assert [lot.points for lot in decision.new_lots] == [40]
    assert decision.order is not None
    assert decision.order.earned == 40


def test_max_times_and_max_points_in_one_cap():
    compiled = capped({"period": "day", "max_times": 2, "max_points": 30}, points=20)
    assert decide(compiled, member(usage={("r", "day:2026-01-05"): Usage(1, 20)}), custom("review")).points == 10
    assert decide(compiled, member(usage={("r", "day:2026-01-05"): Usage(2, 20)}), custom("review")).points == 0


def test_the_tightest_of_several_caps_wins_and_each_period_is_counted():
    compiled = capped({"period": "day", "max_points": 50}, {"period": "week", "max_points": 100}, points=40)
    state = member(usage={("r", "day:2026-01-05"): Usage(0, 0), ("r", "week:2026-W02"): Usage(3, 90)})
    decision = decide(compiled, state, custom("review"))
    assert decision.points == 10
    assert set(decision.usage) == {
        UsageIncrement("r", "day:2026-01-05", 1, 10),
        UsageIncrement("r", "week:2026-W02", 1, 10),
    }


def test_two_caps_on_one_period_count_the_firing_once():
    compiled = capped({"period": "day", "max_times": 5}, {"period": "day", "max_points": 100})
    assert decide(compiled, member(), custom("review")).usage == (UsageIncrement("r", "day:2026-01-05", 1, 20),)


def test_a_capped_rule_leaves_the_others_alone():
    compiled = program(
        rules=[
            {
                "id": "once",
                "event": "signup",
                "points": {"fixed": 100},
                "caps": [{"period": "lifetime", "max_times": 1}],
            },
            {"id": "always", "event": "signup", "points": {"fixed": 1}},
        ]
    )
    decision = decide(compiled, member(usage={("once", "lifetime"): Usage(1, 100)}), signup())
    assert decision.points == 1
    assert [(o.rule_id, o.fired) for o in decision.outcomes] == [("always", True), ("once", False)]
