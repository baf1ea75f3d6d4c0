"""The demo program shows every mechanic: each one, as a member of the record shop would meet it."""

from datetime import UTC, datetime, timedelta

from patron.domain import tiers
from patron.domain.engine import CompiledProgram
from patron.domain.events import Custom, OrderLine, Purchase
from patron.domain.replay import Replay
from patron.services.programs import read_document
from tests.helpers import DEMO_PROGRAM

DEMO = CompiledProgram.compile(read_document(DEMO_PROGRAM), 1)
CUP = OrderLine(sku="FROYO-CUP", category="frozen-yogurt", unit_price="4.50")
MONDAY_MORNING = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 09:00 in New York


def buy(replay, n, total="4.50", lines=(CUP,), at=MONDAY_MORNING):
    event = Purchase(
        event_id=f"p{n}",
        member_id="m1",
        occurred_at=at + timedelta(minutes=n),
        order_id=f"o{n}",
        total=total,
        lines=lines,
    )
    return replay.apply(event)


def fired(decision):
    return {o.rule_id: o.points for o in decision.outcomes if o.fired}


def test_nine_frozen_yogurt_cups_give_the_tenth_free():
    replay = Replay(DEMO)
    decisions = [buy(replay, n) for n in range(9)]
    assert [len(d.grants) for d in decisions] == [0] * 8 + [1]
    assert decisions[-1].grants[0].reward_id == "free-froyo"


def test_triple_points_on_weekday_afternoons_in_new_york():
    replay = Replay(DEMO)
    afternoon = buy(replay, 1, "20.00", lines=(), at=datetime(2026, 3, 2, 19, 30, tzinfo=UTC))  # 14:30 EST
    assert fired(afternoon) == {"purchase": 20, "quiet-hours": 40}


def test_a_new_genre_and_a_crate_of_three_genres_earn_bonuses():
    replay = Replay(DEMO)
    lines = tuple(OrderLine(sku=f"LP-{g}", category=g, unit_price="10.00") for g in ("jazz", "soul", "punk"))
    first = buy(replay, 1, "30.00", lines=lines)
    again = buy(replay, 2, "30.00", lines=lines)
    assert fired(first) == {"purchase": 30, "crate-digger": 30, "new-genre": 25}
    assert fired(again) == {"purchase": 30, "crate-digger": 30}


def test_a_review_earns_once_per_review_id():
    replay = Replay(DEMO)
    review = lambda n: Custom(  # noqa: E731
        event_id=f"r{n}", member_id="m1", occurred_at=MONDAY_MORNING, name="review", attributes={"review_id": "R1"}
    )
    assert [replay.apply(review(n)).points for n in range(2)] == [20, 0]


def test_silver_after_a_thousand_points_earned_in_the_year():
    replay = Replay(DEMO)
    decision = buy(replay, 1, "1000.00", lines=())
    assert [c.to_tier for c in decision.tier_changes] == ["silver"]
    standing = tiers.standing(DEMO.document.tiers, replay.members["m1"].progress, MONDAY_MORNING, DEMO.zone, "USD")
    assert standing.message == "1950 points to Gold"  # 1000 + 50 for a big basket
    assert fired(buy(replay, 2, "100.00", lines=()))["tier:silver"] == 37  # 1.25 x (100 + 50)


def test_record_store_day_exclusive_opens_a_week_early_for_gold():
    doc = DEMO.document
    exclusive = doc.reward("rsd-exclusive")
    week_before = datetime(2026, 4, 12, 12, tzinfo=UTC)
    assert tiers.reward_refusal(doc, exclusive, "gold", week_before) is None
    assert tiers.reward_refusal(doc, exclusive, "silver", week_before) is not None
