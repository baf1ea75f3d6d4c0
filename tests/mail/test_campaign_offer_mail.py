"""A win-back offer reaches a lapsed member who agreed to marketing mail, in their language, and nobody else."""

from datetime import timedelta

from patron.domain.events import Purchase
from patron.mail.consumer import MailConsumer
from patron.mail.delivery import deliver_pending
from patron.services import events, outbox
from patron.worker.campaign_jobs import OFFER_TO_LAPSED
from patron.worker.runner import Worker
from tests.conftest import T0
from tests.helpers import program_document, set_up
from tests.integration.test_jobs import Clock, registry_of, settings
from tests.mail.conftest import body, enrol

WIN_BACK = {
    "id": "win-back",
    "name": "Wracaj do nas",
    "starts_at": T0.isoformat(),
    "ends_at": "2026-04-01T00:00:00+00:00",
    "target": {"lapsed_days": 30},
    "effect": {"bonus_points": 200, "multiplier": "2"},
}


def test_only_the_consenting_lapsed_member_gets_the_offer_by_mail(db, inbox, mail_settings):
    s = set_up(db, program_document(campaigns=[WIN_BACK]), member_ids=(), now=T0)
    enrol(db, s.program_id, "ola", email="ola@example.com", locale="pl", marketing_consent=True)
    enrol(db, s.program_id, "jan", email="jan@example.com", locale="pl", marketing_consent=False)
    for member in ("ola", "jan"):
        purchase = Purchase(event_id=member, member_id=member, occurred_at=T0, order_id=member, total="20")
        events.ingest(db, s.cache, s.program_id, purchase, now=T0)
    now = T0 + timedelta(days=40)
    worker = Worker(db, registry_of(OFFER_TO_LAPSED), settings(), clock=Clock(now), name="w")
    assert worker.run_now("campaigns.offer_to_lapsed").result == {"campaigns": 1, "members": 2}

    while outbox.dispatch(db, [MailConsumer()], now=now):
        pass
    deliver_pending(db, mail_settings, now=now)

    [message] = [m for m in inbox.received if "Tęsknimy" in m["Subject"]]
    assert message["To"] == "ola@example.com"
    text = body(message)
    assert "Do 31 marca 2026 nasza oferta „Wracaj do nas” daje Ci przy następnym zakupie:" in text
    assert "dodatkowo 200 punktów" in text
    assert "2 razy więcej punktów niż zwykle" in text
    assert all(m["To"] != "jan@example.com" for m in inbox.received)
