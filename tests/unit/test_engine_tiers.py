"""Tiers: qualification on earned points, spend or visits over a window; upgrades at once, downgrades at a window's
end after a grace period, one level at a time; every change with its reason."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from patron.domain import tiers
from patron.domain.engine import decide
from patron.domain.progress import EMPTY, Progress, Tally
from patron.domain.replay import Replay
from tests.unit.factories import T, custom, document, error_paths, member, program, purchase, refund

LEVELS = [
    {"id": "silver", "name": "Silver", "threshold": 100, "earn_multiplier": "1.5"},
    {"id": "gold", "name": "Gold", "threshold": 500, "earn_multiplier": "2", "free_shipping": True},
    {"id": "platinum", "name": "Platinum", "threshold": 2000, "dedicated_service": True},
]


def tiered(qualify_on="points", window="calendar_year", downgrade=None, **fields):
    spec = {"qualify_on": qualify_on, "window": window, "levels": LEVELS}
    if downgrade is not None:
        spec["downgrade"] = downgrade
    return program(tiers=spec, rules=[{"id": "base", "event": "purchase"}], **fields)


def at(year, month, day=1, hour=12):
    return datetime(year, month, day, hour, tzinfo=UTC)


def test_reaching_a_threshold_upgrades_at_once_with_the_reason():
    compiled = tiered()
    decision = decide(compiled, member(), purchase("120.00"))
    assert decision.points == 120  # the multiplier of the new tier applies from the next purchase on
    (change,) = decision.tier_changes
    assert (change.from_tier, change.to_tier) == (None, "silver")
    assert change.reason == "120 points earned in 2026 reached Silver (100 points)"
    assert decision.progress.tier == "silver"
    assert any("tier none -> Silver" in note for note in decision.notes)


def test_a_big_purchase_can_skip_levels():
    decision = decide(tiered(), member(), purchase("600.00"))
    assert [c.to_tier for c in decision.tier_changes] == ["gold"]


def test_the_tier_multiplier_is_explained_in_its_own_outcome():
    state = member(progress=Progress(tier="gold", tier_since=T))
    decision = decide(tiered(), state, purchase("10.00"))
    assert decision.points == 20
    assert [(o.rule_id, o.points, o.reason) for o in decision.outcomes] == [
        ("base", 10, "fired"),
        ("tier:gold", 10, "Gold earns x2 on purchases"),
    ]


def test_spending_points_never_lowers_the_qualifying_amount():
    """Qualification counts points earned; the balance is not part of the member state at all."""
    replay = Replay(tiered())
    replay.apply(purchase("80.00", order_id="a"))
    replay.apply(purchase("30.00", order_id="b", at=T + timedelta(days=1)))
    assert replay.members["m1"].progress.tier == "silver"


def test_points_from_custom_events_count_towards_points_tiers():
    compiled = program(
        tiers={"qualify_on": "points", "window": "lifetime", "levels": LEVELS},
        rules=[{"id": "review", "event": "review", "points": {"fixed": 150}}],
    )
    decision = decide(compiled, member(), custom("review"))
    assert decision.progress.tier == "silver"


@pytest.mark.parametrize(
    ("qualify_on", "purchases", "tier", "message"),
    [
        ("spend", ["60.00", "45.50"], "silver", "394.50 USD to Gold"),
        ("visits", ["1.00"] * 100, "silver", "400 visits to Gold"),
        ("points", ["50.00", "10.00"], None, "40 points to Silver"),
    ],
)
def test_qualification_on_spend_visits_or_points(qualify_on, purchases, tier, message):
    replay = Replay(tiered(qualify_on=qualify_on))
    for n, total in enumerate(purchases):
        replay.apply(purchase(total, order_id=f"o{n}", at=T + timedelta(minutes=n)))
    progress = replay.members["m1"].progress
    assert progress.tier == tier
    ladder = replay.program.document.tiers
    assert tiers.standing(ladder, progress, T + timedelta(days=1), replay.program.zone, "USD").message == message


def test_calendar_year_window_starts_again_in_january():
    progress = Progress(months={"2025-12": Tally(points=90)}, lifetime=Tally(points=90))
    decision = decide(tiered(), member(progress=progress), purchase("20.00", at=at(2026, 1, 10)))
    assert decision.tier_changes == ()  # 90 last year + 20 this year: only 20 count in 2026


def test_rolling_window_counts_the_last_twelve_months():
    progress = Progress(months={"2025-03": Tally(points=90), "2025-02": Tally(points=500)})
    decision = decide(tiered(window="rolling_12_months"), member(progress=progress), purchase("20.00", at=at(2026, 2)))
    assert [c.to_tier for c in decision.tier_changes] == ["silver"]  # March 2025 counts, February 2025 does not


def test_refunds_take_back_what_the_order_counted():
    replay = Replay(tiered(qualify_on="spend"))
    replay.apply(purchase("90.00", order_id="a"))
    replay.apply(refund("40.00", order_id="a", at=T + timedelta(hours=1)))
    replay.apply(purchase("20.00", order_id="b", at=T + timedelta(hours=2)))
    assert replay.members["m1"].progress.tier is None  # 90 - 40 + 20 = 70 spent


def gold_since(moment, months=None):
    return Progress(tier="gold", tier_since=moment, months=months or {})


def test_never_downgrade_keeps_the_tier_whatever_happens():
    decision = decide(tiered(), member(progress=gold_since(at(2020, 5))), purchase("1.00", at=at(2026, 5)))
    assert decision.tier_changes == ()


def test_downgrade_waits_for_the_end_of_the_window_and_the_grace_period():
    compiled = tiered(downgrade={"policy": "window_end", "grace_days": 30})
    state = member(progress=gold_since(at(2025, 3), {"2025-03": Tally(points=600)}))
    # Gold was earned in 2025 and 2025 qualified: nothing changes in 2026, and 2026 has earned little.
    assert decide(compiled, state, purchase("1.00", at=at(2027, 1, 30))).tier_changes == ()
    decision = decide(compiled, state, purchase("1.00", at=at(2027, 2, 1)))
    (change,) = decision.tier_changes
    assert (change.from_tier, change.to_tier) == ("gold", "silver")
    assert change.reason == "0 points earned in 2026; Gold needs 500 points: down one level after 30 days' grace"
    assert change.at == datetime(2027, 1, 31, tzinfo=UTC)


def test_downgrade_is_one_level_per_window():
    compiled = tiered(downgrade={"policy": "window_end", "grace_days": 0})
    state = member(progress=Progress(tier="platinum", tier_since=at(2024, 6), reviewed_through="2023"))
    decision = decide(compiled, state, purchase("1.00", at=at(2026, 6)))
    assert [(c.from_tier, c.to_tier) for c in decision.tier_changes] == [("platinum", "gold"), ("gold", "silver")]
    again = decide(compiled, member(progress=decision.progress), purchase("1.00", order_id="o2", at=at(2026, 7)))
    assert again.tier_changes == ()  # each window is reviewed once


def test_requalifying_during_grace_keeps_the_tier():
    compiled = tiered(downgrade={"policy": "window_end", "grace_days": 60})
    state = member(progress=gold_since(at(2025, 3), {"2026-01": Tally(points=600)}))
    assert decide(compiled, state, purchase("1.00", at=at(2026, 3, 15))).tier_changes == ()


def test_rolling_downgrade_on_the_anniversary_of_reaching_the_tier():
    compiled = tiered(window="rolling_12_months", downgrade={"policy": "window_end", "grace_days": 0})
    state = member(progress=gold_since(at(2025, 4, 10), {"2025-04": Tally(points=120)}))
    assert decide(compiled, state, purchase("1.00", at=at(2026, 4, 9))).tier_changes == ()
    (change,) = decide(compiled, state, purchase("1.00", at=at(2026, 4, 11))).tier_changes
    assert change.to_tier == "silver"
    assert "in the 12 months before 2026-04-10" in change.reason


def test_standing_says_how_far_the_next_tier_is():
    ladder = tiered().document.tiers
    progress = Progress(tier="silver", tier_since=T, months={"2026-01": Tally(points=260)})
    found = tiers.standing(ladder, progress, T, tiered().zone, "USD")
    assert (found.level.id, found.next_level.id, found.missing, found.message) == (
        "silver",
        "gold",
        Decimal(240),
        "240 points to Gold",
    )
    top = tiers.standing(ladder, Progress(tier="platinum", tier_since=T), T, tiered().zone, "USD")
    assert top.message == "Platinum: the highest tier"


def test_progress_survives_its_json_form():
    replay = Replay(tiered())
    replay.apply(purchase("120.00", lines=({"sku": "A", "category": "jazz", "unit_price": "120.00"},)))
    progress = replay.members["m1"].progress
    assert Progress.from_json(progress.to_json()) == progress
    assert Progress.from_json(None) == EMPTY


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"levels": [{"id": "a", "name": "A", "threshold": 10}, {"id": "b", "name": "B", "threshold": 5}]}, "rise"),
        ({"levels": [{"id": "a", "name": "A", "threshold": "10.5"}]}, "whole numbers"),
        ({"levels": []}, "at least 1"),
    ],
)
def test_badly_formed_tiers_are_refused(spec, message):
    with pytest.raises(ValidationError) as caught:
        document(tiers={"qualify_on": "points", "window": "lifetime", **spec})
    assert any(message in text for text in error_paths(caught.value).values()), caught.value


def test_rewards_and_campaigns_must_name_existing_tiers():
    with pytest.raises(ValidationError, match="no tier 'diamond'"):
        document(
            tiers={"qualify_on": "points", "window": "lifetime", "levels": LEVELS},
            rewards=[{"id": "r", "name": "R", "cost": 1, "kind": "coupon", "value": "1", "min_tier": "diamond"}],
        )


def test_tier_only_and_early_access_rewards():
    doc = document(
        tiers={"qualify_on": "points", "window": "lifetime", "levels": LEVELS},
        rewards=[
            {"id": "lounge", "name": "Lounge", "cost": 1, "kind": "coupon", "value": "1", "min_tier": "gold"},
            {
                "id": "preview",
                "name": "Preview",
                "cost": 1,
                "kind": "coupon",
                "value": "1",
                "available_from": "2026-03-01T00:00:00Z",
                "early_access": [{"tier": "gold", "available_from": "2026-02-01T00:00:00Z"}],
            },
        ],
    )
    lounge, preview = doc.rewards
    assert tiers.reward_refusal(doc, lounge, "silver", T) == "'Lounge' is for Gold members and above"
    assert tiers.reward_refusal(doc, lounge, "platinum", T) is None
    assert tiers.reward_refusal(doc, preview, "platinum", at(2026, 2, 2)) is None
    assert tiers.reward_refusal(doc, preview, "silver", at(2026, 2, 2)) == (
        "'Preview' opens to you on 2026-03-01T00:00:00+00:00"
    )
    assert tiers.reward_refusal(doc, preview, None, at(2026, 3, 2)) is None
