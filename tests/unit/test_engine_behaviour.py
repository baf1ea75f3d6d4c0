"""Behavioural bonuses as plain conditions: quiet-hour multipliers in the store's time zone, basket bonuses, a first
purchase in a new category, and higher rates by tier or member attribute."""

from datetime import UTC, datetime

import pytest

from patron.domain.engine import decide
from patron.domain.progress import Progress
from patron.domain.replay import Replay
from tests.unit.factories import member, program, purchase

QUIET_HOURS = "event.local_weekday <= 5 && event.local_hour >= 14 && event.local_hour < 17"


def triple_in_quiet_hours():
    return program(
        timezone="America/New_York",
        rules=[
            {
                "id": "quiet-hours",
                "event": "purchase",
                "when": QUIET_HOURS,
                "multiplier": 3,
                "stop_after": True,
                "priority": 10,
            },
            {"id": "base", "event": "purchase"},
        ],
    )


@pytest.mark.parametrize(
    ("moment", "points", "fired"),
    [
        (datetime(2026, 1, 5, 19, 0, tzinfo=UTC), 30, "quiet-hours"),  # Monday 14:00 in New York
        (datetime(2026, 1, 5, 21, 59, tzinfo=UTC), 30, "quiet-hours"),  # 16:59
        (datetime(2026, 1, 5, 22, 0, tzinfo=UTC), 10, "base"),  # 17:00
        (datetime(2026, 1, 5, 15, 0, tzinfo=UTC), 10, "base"),  # 15:00 UTC is 10:00 in New York
        (datetime(2026, 1, 10, 19, 30, tzinfo=UTC), 10, "base"),  # Saturday
        (datetime(2026, 7, 6, 18, 0, tzinfo=UTC), 30, "quiet-hours"),  # summer time: 14:00 EDT is 18:00 UTC
    ],
)
def test_triple_points_on_weekdays_from_two_to_five_in_the_store_time_zone(moment, points, fired):
    decision = decide(triple_in_quiet_hours(), member(), purchase("10.00", at=moment))
    assert decision.points == points
    assert [o.rule_id for o in decision.outcomes if o.fired] == [fired]


def test_local_time_fields():
    compiled = program(
        timezone="Europe/Warsaw",
        rules=[
            {
                "id": "r",
                "event": "purchase",
                "when": 'event.local_time == "13:05" && event.local_date == "2026-01-05" && event.local_minute == 5',
            }
        ],
    )
    assert decide(compiled, member(), purchase("10.00", at=datetime(2026, 1, 5, 12, 5, tzinfo=UTC))).points == 10


def line(sku, category, quantity=1, price="2.00"):
    return {"sku": sku, "category": category, "quantity": quantity, "unit_price": price}


def basket_program():
    return program(
        rules=[
            {"id": "base", "event": "purchase"},
            {"id": "five-items", "event": "purchase", "when": "event.item_count >= 5", "points": {"fixed": 25}},
            {"id": "three-aisles", "event": "purchase", "when": "event.category_count >= 3", "points": {"fixed": 40}},
        ]
    )


@pytest.mark.parametrize(
    ("lines", "bonuses"),
    [
        ((line("a", "jazz", 4),), []),
        ((line("a", "jazz", 5),), ["five-items"]),
        ((line("a", "jazz"), line("b", "rock"), line("c", "rock")), []),
        ((line("a", "jazz"), line("b", "rock"), line("c", "pop")), ["three-aisles"]),
        ((line("a", "jazz", 3), line("b", "rock"), line("c", "pop")), ["five-items", "three-aisles"]),
    ],
)
def test_basket_bonuses_for_items_or_distinct_categories(lines, bonuses):
    decision = decide(basket_program(), member(), purchase("10.00", lines=lines))
    assert [o.rule_id for o in decision.outcomes if o.fired and o.rule_id != "base"] == bonuses


def test_first_purchase_in_a_category_new_to_the_member():
    compiled = program(
        rules=[
            {"id": "base", "event": "purchase"},
            {
                "id": "discover",
                "event": "purchase",
                "when": "size(event.new_categories) > 0",
                "points": {"fixed": 50},
                "description": "cross-selling: a category you never bought",
            },
        ]
    )
    replay = Replay(compiled)
    first = replay.apply(purchase("10.00", order_id="a", lines=(line("a", "jazz"),)))
    again = replay.apply(purchase("10.00", order_id="b", lines=(line("b", "jazz"),)))
    other = replay.apply(purchase("10.00", order_id="c", lines=(line("c", "jazz"), line("d", "classical"))))
    assert [first.points, again.points, other.points] == [60, 10, 60]
    assert replay.members["m1"].progress.categories == {"jazz": 3, "classical": 1}


def test_earn_rate_by_tier_or_member_attribute():
    compiled = program(
        tiers={
            "qualify_on": "visits",
            "window": "lifetime",
            "levels": [{"id": "regular", "name": "R", "threshold": 3}],
        },
        rules=[
            {"id": "regulars", "event": "purchase", "when": 'member.tier == "regular"', "multiplier": 2},
            {"id": "staff", "event": "purchase", "when": "member.attributes.staff == true", "multiplier": 3},
            {"id": "frequent", "event": "purchase", "when": "member.visits >= 10", "points": {"fixed": 5}},
        ],
    )
    assert decide(compiled, member(progress=Progress(tier="regular")), purchase("10.00")).points == 20
    assert decide(compiled, member(attributes={"staff": True}), purchase("10.00")).points == 30
    assert decide(compiled, member(attributes={"staff": False}), purchase("10.00")).points == 0


def test_a_program_without_these_mechanics_keeps_no_progress():
    compiled = program(rules=[{"id": "base", "event": "purchase", "when": "event.total_minor > 0"}])
    assert compiled.tracks_progress is False
    assert decide(compiled, member(), purchase("10.00")).progress is None
