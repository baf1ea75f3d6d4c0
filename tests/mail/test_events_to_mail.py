"""Committed outbox events become mail: a redemption receipt, a reminder before points expire, a tier change,
and a change of the program's terms announced to every member."""

from datetime import timedelta

from patron.mail.consumer import MailConsumer, program_changes
from patron.mail.delivery import deliver_pending
from patron.mail.kinds import ProgramChange
from patron.services import adjustments, outbox, programs, redemptions
from patron.services.outbox import Emitted, EventType
from tests.conftest import T0
from tests.helpers import program_document, set_up
from tests.mail.conftest import body
from tests.mail.conftest import enrol as enrol_member


def enrol(s, external_id, *, email, locale=None, consent=None) -> int:
    return enrol_member(s.db, s.program_id, external_id, email=email, locale=locale, marketing_consent=consent)


def dispatch(db) -> None:
    while outbox.dispatch(db, [MailConsumer()], now=T0):
        pass


def test_a_redemption_sends_its_receipt_with_the_balance_it_left(db, inbox, mail_settings):
    s = set_up(db, now=T0, member_ids=())
    enrol(s, "ola", email="ola@example.com", locale="pl")
    adjustments.adjust(db, s.cache, s.program_id, "ola", 1250, "welcome gift", actor="test", now=T0)
    redemptions.redeem(db, s.cache, s.program_id, "ola", "free-single", now=T0)
    adjustments.adjust(db, s.cache, s.program_id, "ola", 5, "later", actor="test", now=T0)  # not in the receipt

    dispatch(db)
    dispatch(db)  # dispatching again finds nothing new
    deliver_pending(db, mail_settings, now=T0)

    [receipt] = inbox.received
    assert receipt["Subject"] == "Twoja nagroda: A free CD single"
    assert "Nagroda A free CD single została wymieniona za 300 punktów." in body(receipt)
    assert "Stan Twojego konta: 950 punktów." in body(receipt)


def test_points_about_to_expire_are_announced_even_to_members_without_marketing_consent(db, inbox, mail_settings):
    s = set_up(db, now=T0, member_ids=())
    member_id = enrol(s, "li", email="li@example.com", locale="zh-CN", consent=False)
    adjustments.adjust(db, s.cache, s.program_id, "li", 1200, "goodwill", actor="test", now=T0)
    reminder = Emitted(
        s.program_id,
        EventType.POINTS_EXPIRING_SOON,
        member_id,
        {"points": 1200, "expires_on": "2026-02-01", "expires_at": "2026-02-01T00:00:00+00:00"},
        T0,
    )
    db.run(lambda conn: outbox.emit(conn, [reminder], now=T0))

    dispatch(db)
    deliver_pending(db, mail_settings, now=T0)

    [message] = inbox.received
    assert message["Subject"] == "1,200 积分将于2026年2月1日到期"
    assert "您有 1,200 积分将于2026年2月1日到期。" in body(message)


def test_a_tier_change_names_the_tiers_and_the_direction(db, inbox, mail_settings):
    document = program_document(
        tiers={
            "qualify_on": "points",
            "window": "lifetime",
            "levels": [
                {"id": "silver", "name": "Silver", "threshold": 0},
                {"id": "gold", "name": "Gold", "threshold": 1000},
            ],
        }
    )
    s = set_up(db, document, now=T0, member_ids=())
    member_id = enrol(s, "ola", email="ola@example.com")
    changes = [
        Emitted(s.program_id, EventType.TIER_CHANGED, member_id, {"from_tier": old, "to_tier": new}, T0)
        for old, new in (("silver", "gold"), ("gold", "silver"))
    ]
    db.run(lambda conn: outbox.emit(conn, changes, now=T0))

    dispatch(db)
    deliver_pending(db, mail_settings, now=T0)

    assert [m["Subject"] for m in inbox.received] == ["You have reached Gold", "Your tier is now Silver"]
    assert "Congratulations! You moved up from Silver to Gold." in body(inbox.received[0])


def test_publishing_new_terms_tells_every_member_what_changes(db, inbox, mail_settings):
    s = set_up(db, now=T0, member_ids=())
    enrol(s, "ola", email="ola@example.com", locale="pl", consent=False)
    enrol(s, "bo", email="bo@example.com", consent=True)
    enrol(s, "anon", email=None)
    dispatch(db)  # the first version announced nothing: there were no terms before it
    current = program_document().model_dump(mode="json")
    cheaper = [r | {"cost": 250} if r["id"] == "free-single" else r for r in current["rewards"]]
    changed = program_document(rewards=cheaper, expiry={"policy": "after", "days": 365})
    programs.publish(db, s.program_id, changed, actor="test", now=T0, effective_from=T0 + timedelta(days=30))

    dispatch(db)
    deliver_pending(db, mail_settings, now=T0)

    texts = {m["To"]: body(m) for m in inbox.received}
    assert set(texts) == {"ola@example.com", "bo@example.com"}
    assert "A free CD single now costs 250 points (until now 300 points)." in texts["bo@example.com"]
    assert "The new terms (version 2) apply from February 4, 2026." in texts["bo@example.com"]
    assert "Zmieniają się zasady wygasania punktów." in texts["ola@example.com"]


def test_program_changes_are_found_by_comparing_the_documents():
    old = program_document().model_dump(mode="json")
    rewards = [r for r in old["rewards"] if r["id"] != "tote-bag"]
    rewards.append({"id": "mug", "name": "Mug", "cost": 700, "kind": "gift", "stock": 10})
    new = old | {"rewards": rewards, "name": "Renamed", "pending_days": old["pending_days"] + 1}

    assert program_changes(old, new) == [
        ProgramChange(what="reward_added", name="Mug", new_cost=700),
        ProgramChange(what="reward_removed", name="Patron Records tote bag"),
        ProgramChange(what="earning"),
    ]
    assert program_changes(old, old | {"name": "Only the name"}) == []
