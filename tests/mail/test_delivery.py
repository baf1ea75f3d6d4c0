"""Mail queued in a transaction reaches a real SMTP server on loopback: in the member's language, with the
numbers written for it, only where consent allows, and again after the server was down."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import sqlalchemy as sa

from patron.domain.members import MemberProfile
from patron.mail import consent, outbox
from patron.mail.delivery import deliver_pending
from patron.mail.kinds import Birthday, MailKind, PointsExpiring, ProgramChange, ProgramChanged, RewardRedeemed
from patron.services import members
from patron.store.tables import mail_outbox
from tests.conftest import T0
from tests.helpers import set_up
from tests.mail.conftest import SECRET, body, free_port
from tests.mail.conftest import enrol as enrol_member


def enrol(setup, external_id, *, email, locale=None, consent=None) -> int:
    return enrol_member(setup.db, setup.program_id, external_id, email=email, locale=locale, marketing_consent=consent)


def queue(setup, member_id, kind, context, **kwargs) -> bool:
    return setup.db.run(
        lambda conn: outbox.queue(
            conn, program_id=setup.program_id, member_id=member_id, kind=kind, context=context, now=T0, **kwargs
        )
    )


def statuses(db) -> list[tuple[str, str, int]]:
    with db.read() as conn:
        rows = conn.execute(
            sa.select(mail_outbox.c.template, mail_outbox.c.status, mail_outbox.c.attempts).order_by(mail_outbox.c.id)
        ).all()
    return [tuple(r) for r in rows]


RECEIPT = RewardRedeemed(reward_name="Kawa", cost=22, coupon_code="KAWA-7Q2X", balance=12345)

EXPECTED_RECEIPTS = {
    "en": ("Your reward: Kawa", "You redeemed Kawa for 22 points.", "Your balance is now 12,345 points."),
    "pl": (
        "Twoja nagroda: Kawa",
        "Nagroda Kawa została wymieniona za 22 punkty.",
        "Stan Twojego konta: 12\N{NO-BREAK SPACE}345 punktów.",
    ),
    "zh_Hans": ("您的奖励：Kawa", "您已使用 22 积分 兑换了Kawa。", "您当前的积分余额：12,345 积分。"),  # noqa: RUF001
}


@pytest.mark.parametrize(("member_locale", "language"), [("en-GB", "en"), ("pl-PL", "pl"), ("zh-CN", "zh_Hans")])
def test_a_receipt_arrives_in_the_members_language_with_its_numbers(db, inbox, mail_settings, member_locale, language):
    setup = set_up(db, now=T0, member_ids=())
    member_id = enrol(setup, "ola", email="ola@example.com", locale=member_locale)
    assert queue(setup, member_id, MailKind.REWARD_REDEEMED, RECEIPT)

    report = deliver_pending(db, mail_settings, now=T0)

    assert report.sent == 1
    [message] = inbox.to("ola@example.com")
    subject, redeemed, balance = EXPECTED_RECEIPTS[language]
    assert message["Subject"] == subject
    text = body(message)
    assert redeemed in text
    assert balance in text
    assert "KAWA-7Q2X" in text
    assert "KAWA-7Q2X" in body(message, "html")
    assert message["Content-Language"] == language.replace("_", "-")
    assert message["From"] == "Kawiarnia <loyalty@kawiarnia.example>"
    assert statuses(db) == [("reward_redeemed", "sent", 1)]


def test_every_message_carries_a_working_one_click_unsubscribe(db, inbox, mail_settings):
    setup = set_up(db, now=T0, member_ids=())
    member_id = enrol(setup, "ola", email="ola@example.com", consent=True)
    queue(setup, member_id, MailKind.REWARD_REDEEMED, RECEIPT)
    deliver_pending(db, mail_settings, now=T0)

    [message] = inbox.received
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = message["List-Unsubscribe"].strip("<>")
    assert link in body(message)
    assert urlparse(link).netloc == "patron.example"
    token = parse_qs(urlparse(link).query)["token"][0]
    assert consent.unsubscribe(db, token, SECRET, now=T0).changed
    with db.read() as conn:
        assert members.view(conn, setup.program_id, "ola", now=T0).marketing_consent is False


def test_marketing_mail_goes_only_to_members_who_consented(db, inbox, mail_settings):
    setup = set_up(db, now=T0, member_ids=())
    agreed = enrol(setup, "agreed", email="agreed@example.com", consent=True)
    silent = enrol(setup, "silent", email="silent@example.com")  # consent never stated: none
    declined = enrol(setup, "declined", email="declined@example.com", consent=False)

    queued = [queue(setup, m, MailKind.BIRTHDAY, Birthday(bonus_points=50)) for m in (agreed, silent, declined)]

    assert queued == [True, False, False]
    deliver_pending(db, mail_settings, now=T0)
    assert [m["To"] for m in inbox.received] == ["agreed@example.com"]


def test_transactional_mail_still_goes_to_members_who_opted_out(db, inbox, mail_settings):
    setup = set_up(db, now=T0, member_ids=())
    declined = enrol(setup, "declined", email="declined@example.com", locale="pl", consent=False)
    expiring = PointsExpiring(points=5, expires_on=T0.date() + timedelta(days=14), balance=5)

    assert queue(setup, declined, MailKind.POINTS_EXPIRING, expiring)
    deliver_pending(db, mail_settings, now=T0)

    [message] = inbox.to("declined@example.com")
    assert message["Subject"] == "Punkty wygasające 19 stycznia 2026: 5 punktów"


def test_unsubscribing_after_queueing_stops_marketing_mail_already_waiting(db, inbox, mail_settings):
    setup = set_up(db, now=T0, member_ids=())
    member_id = enrol(setup, "ola", email="ola@example.com", consent=True)
    queue(setup, member_id, MailKind.BIRTHDAY, Birthday())
    queue(setup, member_id, MailKind.REWARD_REDEEMED, RECEIPT)
    # The member changes their mind through the merchant's own system, not the link: checked again at sending.
    members.upsert(db, setup.program_id, "ola", MemberProfile(email="ola@example.com", marketing_consent=False), now=T0)

    report = deliver_pending(db, mail_settings, now=T0)

    assert (report.sent, report.suppressed) == (1, 1)
    assert [m["Subject"] for m in inbox.received] == ["Your reward: Kawa"]
    assert statuses(db) == [("birthday", "suppressed", 1), ("reward_redeemed", "sent", 1)]


def test_a_profile_update_that_does_not_state_consent_keeps_it(db):
    setup = set_up(db, now=T0, member_ids=())
    enrol(setup, "ola", email="ola@example.com", consent=True)
    members.upsert(db, setup.program_id, "ola", MemberProfile(email="new@example.com"), now=T0)
    with db.read() as conn:
        assert members.view(conn, setup.program_id, "ola", now=T0).marketing_consent is True


def test_nothing_is_queued_when_the_change_rolls_back(db, inbox, mail_settings):
    setup = set_up(db, now=T0, member_ids=())
    member_id = enrol(setup, "ola", email="ola@example.com")

    def change_that_fails(conn):
        outbox.queue(
            conn,
            program_id=setup.program_id,
            member_id=member_id,
            kind=MailKind.REWARD_REDEEMED,
            context=RECEIPT,
            now=T0,
        )
        raise RuntimeError("the redemption failed after queueing its receipt")

    with pytest.raises(RuntimeError):
        db.run(change_that_fails)
    assert statuses(db) == []
    assert deliver_pending(db, mail_settings, now=T0).sent == 0
    assert inbox.received == []


def test_a_dedupe_key_queues_a_scheduled_message_once(db):
    setup = set_up(db, now=T0, member_ids=())
    member_id = enrol(setup, "ola", email="ola@example.com", consent=True)
    key = f"birthday:2026:{member_id}"
    first = queue(setup, member_id, MailKind.BIRTHDAY, Birthday(), dedupe_key=key)
    second = queue(setup, member_id, MailKind.BIRTHDAY, Birthday(), dedupe_key=key)
    assert (first, second) == (True, False)
    assert statuses(db) == [("birthday", "queued", 0)]


def test_a_change_of_terms_reaches_every_member_with_an_address_once(db, inbox, mail_settings):
    setup = set_up(db, now=T0, member_ids=())
    enrol(setup, "en", email="en@example.com", consent=True)
    enrol(setup, "pl", email="pl@example.com", locale="pl", consent=False)
    enrol(setup, "zh", email="zh@example.com", locale="zh-Hans")
    enrol(setup, "no-email", email=None)
    change = ProgramChanged(
        version=2,
        effective_from=T0.date() + timedelta(days=30),
        changes=[ProgramChange(what="reward_cost", name="Kawa", old_cost=100, new_cost=122)],
    )

    def announce(conn):
        return outbox.queue_for_all_members(
            conn,
            program_id=setup.program_id,
            kind=MailKind.PROGRAM_CHANGED,
            context=change,
            now=T0,
            dedupe_prefix="program_changed:2",
        )

    assert db.run(announce) == 3
    assert db.run(announce) == 0  # a repeat (a retried job) queues nothing
    deliver_pending(db, mail_settings, now=T0)

    subjects = {m["To"]: (m["Subject"], body(m)) for m in inbox.received}
    assert set(subjects) == {"en@example.com", "pl@example.com", "zh@example.com"}
    assert "Kawa now costs 122 points (until now 100 points)." in subjects["en@example.com"][1]
    assert "obowiązuje od 4 lutego 2026" in subjects["pl@example.com"][1]
    assert "Kawa kosztuje teraz 122 punkty (dotąd 100 punktów)." in subjects["pl@example.com"][1]
    assert "自2026年2月4日起生效" in subjects["zh@example.com"][1]


def test_mail_waits_while_the_server_is_down_and_goes_once_it_is_back(db, inbox, mail_settings):
    setup = set_up(db, now=T0, member_ids=())
    member_id = enrol(setup, "ola", email="ola@example.com")
    queue(setup, member_id, MailKind.REWARD_REDEEMED, RECEIPT)
    down = mail_settings.model_copy(update={"smtp_port": free_port()})  # nothing listens there

    report = deliver_pending(db, down, now=T0)

    assert (report.sent, report.retried) == (0, 1)
    assert statuses(db) == [("reward_redeemed", "queued", 1)]
    assert deliver_pending(db, mail_settings, now=T0).handled == 0  # not due yet: it backs off
    later = deliver_pending(db, mail_settings, now=T0 + timedelta(hours=1))
    assert later.sent == 1
    assert len(inbox.received) == 1
    assert statuses(db) == [("reward_redeemed", "sent", 2)]


def test_a_refused_address_fails_at_once_and_a_deferral_is_retried(db, inbox, mail_settings):
    setup = set_up(db, now=T0, member_ids=())
    refused = enrol(setup, "gone", email="gone@example.com")
    deferred = enrol(setup, "busy", email="busy@example.com")
    fine = enrol(setup, "ola", email="ola@example.com")
    inbox.refuse.add("gone@example.com")
    inbox.defer.add("busy@example.com")
    for member_id in (refused, deferred, fine):
        queue(setup, member_id, MailKind.REWARD_REDEEMED, RECEIPT)

    report = deliver_pending(db, mail_settings, now=T0)

    assert (report.sent, report.failed, report.retried) == (1, 1, 1)
    assert statuses(db) == [
        ("reward_redeemed", "failed", 1),
        ("reward_redeemed", "queued", 1),
        ("reward_redeemed", "sent", 1),
    ]
    assert [m["To"] for m in inbox.received] == ["ola@example.com"]


def test_the_last_attempt_gives_up(db, mail_settings):
    setup = set_up(db, now=T0, member_ids=())
    member_id = enrol(setup, "ola", email="ola@example.com")
    queue(setup, member_id, MailKind.REWARD_REDEEMED, RECEIPT)
    down = mail_settings.model_copy(update={"smtp_port": free_port(), "mail_max_attempts": 2})

    deliver_pending(db, down, now=T0)
    deliver_pending(db, down, now=T0 + timedelta(hours=1))

    assert statuses(db) == [("reward_redeemed", "failed", 2)]


def test_starttls_is_never_skipped_for_a_server_that_does_not_offer_it(db, inbox, mail_settings):
    setup = set_up(db, now=T0, member_ids=())
    member_id = enrol(setup, "ola", email="ola@example.com")
    queue(setup, member_id, MailKind.REWARD_REDEEMED, RECEIPT)
    insisting = mail_settings.model_copy(update={"smtp_security": "starttls"})

    report = deliver_pending(db, insisting, now=T0)

    assert report.retried == 1
    assert inbox.received == []  # nothing went over the unencrypted session


def test_without_an_smtp_host_mail_stays_queued(db, mail_settings):
    setup = set_up(db, now=T0, member_ids=())
    member_id = enrol(setup, "ola", email="ola@example.com")
    queue(setup, member_id, MailKind.REWARD_REDEEMED, RECEIPT)

    report = deliver_pending(db, mail_settings.model_copy(update={"smtp_host": None}), now=T0)

    assert report.disabled
    assert statuses(db) == [("reward_redeemed", "queued", 0)]


def test_two_workers_sending_at_once_send_each_message_once(pg_db, inbox, mail_settings):
    setup = set_up(pg_db, now=T0, member_ids=())
    for n in range(40):
        member_id = enrol_member(pg_db, setup.program_id, f"m{n}", email=f"m{n}@example.com")
        queue(setup, member_id, MailKind.REWARD_REDEEMED, RECEIPT)

    def drain(_worker: int) -> int:
        sent = 0
        while True:
            report = deliver_pending(pg_db, mail_settings, now=T0, limit=5)
            if not report.handled:
                return sent
            sent += report.sent

    with ThreadPoolExecutor(max_workers=2) as pool:
        sent = list(pool.map(drain, range(2)))

    assert sum(sent) == 40
    assert sorted(m["To"] for m in inbox.received) == sorted(f"m{n}@example.com" for n in range(40))
