"""Campaigns: a window, a target, an effect, a budget that stops them, and stacking by priority."""

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from patron.domain.engine import decide
from patron.domain.progress import Progress
from patron.domain.replay import Replay
from tests.unit.factories import T, document, member, program, purchase

COUPON = {"id": "coupon-5", "name": "$5 off", "cost": 500, "kind": "coupon", "value": "5.00"}
LEVELS = [{"id": "silver", "name": "Silver", "threshold": 100}, {"id": "gold", "name": "Gold", "threshold": 500}]


def campaign(id="c", **fields):
    return {
        "id": id,
        "name": id.title(),
        "starts_at": "2026-01-01T00:00:00Z",
        "ends_at": "2026-02-01T00:00:00Z",
        "effect": {"multiplier": 2},
        **fields,
    }


def with_campaigns(*campaigns, **fields):
    return program(
        rules=[{"id": "base", "event": "purchase"}],
        rewards=[COUPON],
        tiers={"qualify_on": "points", "window": "lifetime", "levels": LEVELS},
        campaigns=list(campaigns),
        **fields,
    )


def fired(decision):
    return [(o.rule_id, o.points) for o in decision.outcomes if o.fired]


def test_a_running_campaign_doubles_the_points_and_says_so():
    decision = decide(with_campaigns(campaign()), member(), purchase("10.00"))
    assert fired(decision) == [("base", 10), ("campaign:c", 10)]
    assert decision.points == 20


@pytest.mark.parametrize("moment", [datetime(2025, 12, 31, 23, 59, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)])
def test_outside_its_window_a_campaign_does_nothing(moment):
    decision = decide(with_campaigns(campaign()), member(), purchase("10.00", at=moment))
    assert decision.points == 10
    assert [o.rule_id for o in decision.outcomes] == ["base"]


@pytest.mark.parametrize(
    ("moment", "runs"),
    [
        # The program's zone falls back an hour at 02:00 on 2025-11-02: the first 01:50 is 05:50 UTC, inside the
        # window though its wall clock is past the end's, the second (fold 1) 06:50 UTC. The window's ends are
        # compared as instants, whatever offset the event is sent in.
        (datetime(2025, 11, 2, 1, 50, fold=0, tzinfo=ZoneInfo("America/New_York")), True),
        (datetime(2025, 11, 2, 1, 50, fold=1, tzinfo=ZoneInfo("America/New_York")), False),
        (datetime(2025, 11, 2, 6, 0, tzinfo=UTC), True),
        (datetime(2025, 11, 2, 11, 59, tzinfo=timezone(timedelta(hours=5))), False),  # 06:59 UTC
        (datetime(2025, 11, 2, 12, 0, tzinfo=timezone(timedelta(hours=6))), True),  # 06:00 UTC
    ],
)
def test_a_window_ending_in_a_repeated_hour_ends_at_its_instant(moment, runs):
    compiled = with_campaigns(
        campaign(starts_at="2025-11-01T00:00:00-04:00", ends_at="2025-11-02T01:45:00-05:00"),  # 06:45 UTC
        timezone="America/New_York",
    )
    assert (decide(compiled, member(), purchase("10.00", at=moment)).points == 20) is runs


@pytest.mark.parametrize("moment", [datetime(1, 1, 3, tzinfo=UTC), T, datetime(9999, 12, 30, tzinfo=UTC)])
def test_a_window_to_the_ends_of_the_calendar_runs_throughout(moment):
    compiled = with_campaigns(
        campaign(starts_at="0001-01-01T00:00:00+05:00", ends_at="9999-12-31T23:00:00-05:00"),
        timezone="Pacific/Kiritimati",
    )
    assert decide(compiled, member(), purchase("10.00", at=moment)).points == 20


def test_targeting_by_tier():
    compiled = with_campaigns(campaign(target={"tier": "gold"}))
    assert decide(compiled, member(progress=Progress(tier="silver")), purchase("10.00")).points == 10
    assert decide(compiled, member(progress=Progress(tier="gold")), purchase("10.00")).points == 20
    refused = decide(compiled, member(), purchase("10.00")).outcomes[-1]
    assert refused.reason == "not targeted: for tier 'gold' and above"


def test_targeting_by_attribute_condition():
    compiled = with_campaigns(campaign(target={"when": 'member.attributes.city == "Lodz"'}))
    assert decide(compiled, member(attributes={"city": "Lodz"}), purchase("10.00")).points == 20
    assert decide(compiled, member(attributes={"city": "Krakow"}), purchase("10.00")).points == 10


def test_targeting_lapsed_members():
    compiled = with_campaigns(campaign(target={"lapsed_days": 60}, effect={"bonus_points": 100}))
    recent = member(progress=Progress(last_purchase_at=T - timedelta(days=59)))
    lapsed = member(progress=Progress(last_purchase_at=T - timedelta(days=60)))
    assert decide(compiled, recent, purchase("10.00")).points == 10
    assert decide(compiled, lapsed, purchase("10.00")).points == 110
    assert decide(compiled, member(), purchase("10.00")).points == 10  # never bought: new, not lapsed


def test_a_coupon_effect_grants_the_reward():
    decision = decide(with_campaigns(campaign(effect={"reward": "coupon-5"})), member(), purchase("10.00"))
    assert [(g.reward_id, g.source) for g in decision.grants] == [("coupon-5", "campaign:c")]


def test_the_budget_stops_the_campaign_when_spent():
    compiled = with_campaigns(campaign(budget_points=25))
    replay = Replay(compiled)
    earned = [replay.apply(purchase("10.00", order_id=f"o{n}", at=T + timedelta(minutes=n))).points for n in range(4)]
    assert earned == [20, 20, 15, 10]
    assert replay.budgets == {"c": 0}
    last = replay.apply(purchase("10.00", order_id="o9", at=T + timedelta(hours=1)))
    assert ("campaign:c", False, "stopped: its points budget is spent") in [
        (o.rule_id, o.fired, o.reason) for o in last.outcomes
    ]


def test_a_replay_runs_an_unbudgeted_campaign_beside_a_budgeted_one():
    compiled = with_campaigns(campaign("double", priority=1), campaign("c", priority=2, budget_points=25))
    replay = Replay(compiled)
    earned = [replay.apply(purchase("10.00", order_id=f"o{n}", at=T + timedelta(minutes=n))).points for n in range(2)]
    assert earned == [30, 30]
    assert replay.budgets == {"c": 5}  # only the budgeted campaign draws on a budget


def test_combinable_campaigns_stack_by_priority_and_an_exclusive_one_applies_alone():
    compiled = with_campaigns(
        campaign("double", priority=1),
        campaign("bonus", priority=2, effect={"bonus_points": 5}),
        campaign("mega", priority=3, exclusive=True, effect={"bonus_points": 1000}),
    )
    decision = decide(compiled, member(), purchase("10.00"))
    assert fired(decision) == [("base", 10), ("campaign:double", 10), ("campaign:bonus", 5)]
    assert decision.outcomes[-1].reason == "exclusive: not combined with 'double'"


def test_an_exclusive_campaign_first_in_priority_stops_the_rest():
    compiled = with_campaigns(
        campaign("mega", priority=1, exclusive=True, effect={"bonus_points": 1000}),
        campaign("double", priority=2),
    )
    decision = decide(compiled, member(), purchase("10.00"))
    assert fired(decision) == [("base", 10), ("campaign:mega", 1000)]
    assert decision.outcomes[-1].reason == "skipped: exclusive campaign 'mega' applied"


def test_a_campaign_must_end_after_it_starts():
    with pytest.raises(ValidationError, match="ends_at must be after starts_at"):
        document(campaigns=[campaign(ends_at="2025-01-01T00:00:00Z")])
