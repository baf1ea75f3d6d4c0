"""Stamp cards (buy 9 frozen-yogurt cups, the 10th is free) and engagement events deduplicated by their external
reference (a post URL, a review id)."""

import json
from datetime import timedelta

import pytest
from pydantic import ValidationError

from patron.domain.engine import decide
from patron.domain.progress import Progress, Stamp
from patron.domain.replay import Replay
from tests.unit.factories import T, custom, document, member, program, purchase, refund

CUP = {"sku": "FROYO-CUP", "category": "frozen-yogurt", "unit_price": "4.50"}
CD = {"sku": "CD-1", "category": "jazz", "unit_price": "12.00"}
FREE_CUP = {"id": "free-cup", "name": "A free cup", "cost": 1, "kind": "free_product", "sku": "FROYO-CUP"}


def froyo(**card):
    spec = {
        "id": "froyo",
        "name": "Frozen-yogurt card",
        "when": 'event.lines.exists(l, l.category == "frozen-yogurt")',
        "size": 9,
        "reward": "free-cup",
        **card,
    }
    return program(rules=[{"id": "base", "event": "purchase"}], rewards=[FREE_CUP], stamp_cards=[spec])


def buy(replay, n, *lines, at=None):
    return replay.apply(purchase("4.50", order_id=f"o{n}", lines=lines or (CUP,), at=at or T + timedelta(hours=n)))


def test_the_ninth_stamp_completes_the_card_gives_the_reward_and_starts_a_new_one():
    replay = Replay(froyo())
    for n in range(8):
        decision = buy(replay, n)
    assert decision.grants == ()
    assert [(o.rule_id, o.reason) for o in decision.outcomes if o.rule_id.startswith("stamp")] == [
        ("stamp_card:froyo", "1 stamp(s): 8 of 9")
    ]
    ninth = buy(replay, 8)
    (grant,) = ninth.grants
    assert (grant.reward_id, grant.source) == ("free-cup", "stamp_card:froyo")
    (signal,) = ninth.signals
    assert (signal.type, signal.data["card"], signal.data["order_id"]) == ("stamp_card.completed", "froyo", "o8")
    assert "card complete" in ninth.outcomes[-1].reason
    assert replay.members["m1"].progress.cards["froyo"].count == 0
    assert buy(replay, 9).outcomes[-1].reason == "1 stamp(s): 1 of 9"


def test_purchases_that_do_not_qualify_get_no_stamp():
    replay = Replay(froyo())
    decision = buy(replay, 1, CD)
    assert decision.outcomes[-1].fired is False
    assert "froyo" not in replay.members["m1"].progress.cards


def test_several_stamps_per_purchase_overflow_onto_the_new_card():
    replay = Replay(froyo(stamps=4, size=10))
    buy(replay, 1)
    buy(replay, 2)
    third = buy(replay, 3)
    assert len(third.grants) == 1
    assert replay.members["m1"].progress.cards["froyo"].count == 2


def test_several_cards_at_once():
    coffee = {"id": "coffee", "name": "Coffee card", "when": "event.item_count >= 1", "size": 2, "reward": "free-cup"}
    compiled = program(
        rewards=[FREE_CUP],
        stamp_cards=[
            coffee,
            {
                "id": "froyo",
                "name": "F",
                "when": 'event.lines.exists(l, l.sku == "FROYO-CUP")',
                "size": 3,
                "reward": "free-cup",
            },
        ],
    )
    replay = Replay(compiled)
    buy(replay, 1)
    second = buy(replay, 2)
    assert [g.source for g in second.grants] == ["stamp_card:coffee"]
    assert {k: c.count for k, c in replay.members["m1"].progress.cards.items()} == {"coffee": 0, "froyo": 2}


def test_an_expired_card_starts_over():
    replay = Replay(froyo(expires_after_days=30))
    buy(replay, 1, at=T)
    buy(replay, 2, at=T + timedelta(days=10))
    late = buy(replay, 3, at=T + timedelta(days=30))
    assert late.outcomes[-1].reason == "the card with 2 stamp(s) expired; a new one starts; 1 stamp(s): 1 of 9"


def test_the_next_card_expires_counting_from_its_own_first_stamp():
    replay = Replay(froyo(size=2, expires_after_days=30))
    buy(replay, 1, at=T)
    assert buy(replay, 2, at=T + timedelta(days=1)).grants  # complete: the next card is empty
    buy(replay, 3, at=T + timedelta(days=20))  # its first stamp
    kept = buy(replay, 4, at=T + timedelta(days=45))  # 46 days after completion, 25 after the first stamp
    assert "expired" not in kept.outcomes[-1].reason
    assert [g.source for g in kept.grants] == ["stamp_card:froyo"]


def test_refunding_a_stamped_purchase_removes_its_stamp_from_an_incomplete_card():
    replay = Replay(froyo())
    buy(replay, 1)
    buy(replay, 2)
    decision = replay.apply(refund("4.50", order_id="o2", at=T + timedelta(days=1)))
    assert ("stamp_card:froyo", "1 stamp(s) of the refunded order removed") in [
        (o.rule_id, o.reason) for o in decision.outcomes
    ]
    assert replay.members["m1"].progress.cards["froyo"].count == 1


def test_a_partial_refund_keeps_the_stamp():
    replay = Replay(froyo())
    replay.apply(purchase("9.00", order_id="o1", lines=(CUP, CUP)))
    replay.apply(refund("1.00", order_id="o1", at=T + timedelta(days=1)))
    assert replay.members["m1"].progress.cards["froyo"].count == 1


def stamp_reasons(decision):
    return [o.reason for o in decision.outcomes if o.rule_id == "stamp_card:froyo"]


def test_refunding_the_lines_that_earned_the_stamp_removes_it():
    replay = Replay(froyo())
    buy(replay, 1)
    replay.apply(purchase("16.50", order_id="o2", lines=(CUP, CD), at=T + timedelta(hours=2)))
    decision = replay.apply(refund(order_id="o2", lines=(CUP,), at=T + timedelta(days=1)))
    assert stamp_reasons(decision) == [
        "1 stamp(s) of the refunded order removed: what remains of the order no longer meets "
        'event.lines.exists(l, l.category == "frozen-yogurt")'
    ]
    assert replay.members["m1"].progress.cards["froyo"].count == 1


def test_refunding_other_lines_keeps_the_stamp():
    replay = Replay(froyo())
    replay.apply(purchase("16.50", order_id="o1", lines=(CUP, CD)))
    decision = replay.apply(refund(order_id="o1", lines=(CD,), at=T + timedelta(days=1)))
    assert stamp_reasons(decision) == [
        '1 stamp(s) kept: what remains of the order still meets event.lines.exists(l, l.category == "frozen-yogurt")'
    ]
    assert replay.members["m1"].progress.cards["froyo"].count == 1


def test_the_stamp_goes_with_the_last_qualifying_item_over_several_refunds():
    replay = Replay(froyo())
    replay.apply(purchase("21.00", order_id="o1", lines=({**CUP, "quantity": 2}, CD)))
    replay.apply(refund(order_id="o1", lines=(CUP,), at=T + timedelta(days=1)))
    assert replay.members["m1"].progress.cards["froyo"].count == 1  # one cup is left
    replay.apply(refund(order_id="o1", lines=(CUP,), at=T + timedelta(days=2)))
    assert replay.members["m1"].progress.cards["froyo"].count == 0


def test_a_partial_refund_by_amount_keeps_the_stamp_and_says_why():
    replay = Replay(froyo())
    replay.apply(purchase("16.50", order_id="o1", lines=(CUP, CD)))
    decision = replay.apply(refund("4.50", order_id="o1", at=T + timedelta(days=1)))
    assert stamp_reasons(decision) == [
        "1 stamp(s) kept: a partial refund by amount does not say which items came back; "
        "the stamps go only when the whole order is refunded"
    ]
    assert replay.members["m1"].progress.cards["froyo"].count == 1


def test_a_stamp_judged_again_sees_the_purchase_time_not_the_refund_time():
    card = froyo(when='event.local_hour < 12 && event.lines.exists(l, l.category == "frozen-yogurt")')
    replay = Replay(card)
    morning = T - timedelta(hours=2)  # 10:00 UTC, the program's zone
    replay.apply(purchase("16.50", order_id="o1", lines=(CUP, CD), at=morning))
    replay.apply(refund(order_id="o1", lines=(CD,), at=T + timedelta(hours=6)))  # refunded at 18:00
    assert replay.members["m1"].progress.cards["froyo"].count == 1


def test_a_partial_refund_by_lines_cannot_take_a_stamp_back_from_a_completed_card():
    replay = Replay(froyo(size=2))
    buy(replay, 1)
    replay.apply(purchase("16.50", order_id="o2", lines=(CUP, CD), at=T + timedelta(hours=2)))  # completes it
    decision = replay.apply(refund(order_id="o2", lines=(CUP,), at=T + timedelta(days=1)))
    assert stamp_reasons(decision) == []
    assert replay.members["m1"].progress.cards["froyo"].count == 0


def test_stamps_keep_their_order_through_the_stored_progress():
    replay = Replay(froyo())
    replay.apply(purchase("16.50", order_id="o1", lines=(CUP, CD)))
    progress = replay.members["m1"].progress
    assert Progress.from_json(json.loads(json.dumps(progress.to_json()))) == progress
    assert Progress.from_json({"cards": {"froyo": {"started_at": T.isoformat(), "stamps": [["o0", 1]]}}}).cards[
        "froyo"
    ].stamps == (Stamp("o0", 1),)


def test_a_refund_cannot_take_a_stamp_back_from_a_completed_card():
    replay = Replay(froyo(size=2))
    buy(replay, 1)
    buy(replay, 2)  # completes the card: the reward is given
    replay.apply(refund("4.50", order_id="o2", at=T + timedelta(days=1)))
    assert replay.members["m1"].progress.cards["froyo"].count == 0


def test_a_card_reward_must_be_a_coupon_or_free_product_in_the_catalog():
    with pytest.raises(ValidationError, match="no reward 'nothing'"):
        document(stamp_cards=[{"id": "c", "name": "C", "when": "true", "size": 2, "reward": "nothing"}])


def reviews(**rule):
    return program(
        rules=[
            {
                "id": "review",
                "event": "review",
                "points": {"fixed": 20},
                "unique_by": "review_id",
                "caps": [{"period": "week", "max_times": 3}],
                **rule,
            }
        ]
    )


def test_the_same_review_id_earns_once():
    replay = Replay(reviews())
    first = replay.apply(custom("review", review_id="R-1"))
    again = replay.apply(custom("review", review_id="R-1"))
    other = replay.apply(custom("review", review_id="R-2"))
    assert [first.points, again.points, other.points] == [20, 0, 20]
    assert again.outcomes[0].reason == "already rewarded for review_id 'R-1'"
    assert replay.members["m1"].usage[("review", "week:2026-W02")].times == 2  # a duplicate uses no cap


def test_an_event_without_its_reference_does_not_earn():
    decision = decide(reviews(), member(), custom("review"))
    assert (decision.points, decision.outcomes[0].reason) == (
        0,
        "needs the attribute 'review_id' (the external reference) to fire",
    )


def test_caps_still_apply_to_distinct_references():
    replay = Replay(reviews())
    earned = [replay.apply(custom("review", review_id=f"R-{n}")).points for n in range(5)]
    assert earned == [20, 20, 20, 0, 0]


def test_a_survey_keeps_the_latest_score():
    compiled = program(rules=[{"id": "nps", "event": "survey", "points": {"fixed": 10}, "unique_by": "survey_id"}])
    replay = Replay(compiled)
    replay.apply(custom("survey", survey_id="2026-q1", score=9))
    assert replay.members["m1"].progress.scores == {"survey": 9}


def test_unique_by_is_for_custom_events():
    with pytest.raises(ValidationError, match="unique_by"):
        document(rules=[{"id": "p", "event": "purchase", "unique_by": "order"}])
