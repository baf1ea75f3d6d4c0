"""The periodic points summary: what the journal says each consenting member earned and spent in the period."""

from datetime import timedelta

from patron.domain.events import Purchase, Refund, Signup
from patron.mail.delivery import deliver_pending
from patron.mail.i18n import Formatter
from patron.mail.summaries import queue_earned_summaries
from patron.services import events, members
from tests.conftest import T0
from tests.helpers import set_up
from tests.mail.conftest import body, enrol

START = T0 - timedelta(hours=12)  # Monday 5 January 2026, midnight UTC
END = START + timedelta(days=7)  # the week ends with Sunday 11 January


def test_each_consenting_member_gets_what_they_earned_and_spent(db, inbox, mail_settings):
    s = set_up(db, now=T0, member_ids=())
    for external_id, consent, locale in (("ola", True, "pl"), ("bo", False, "en"), ("idle", True, "en")):
        enrol(
            db, s.program_id, external_id, email=f"{external_id}@example.com", locale=locale, marketing_consent=consent
        )
    earned = {}
    for member_id in ("ola", "bo"):
        signup = Signup(event_id=f"s-{member_id}", member_id=member_id, occurred_at=T0)
        purchase = Purchase(
            event_id=f"p-{member_id}", member_id=member_id, occurred_at=T0, order_id=f"o-{member_id}", total="150.00"
        )
        receipts = [events.ingest(db, s.cache, s.program_id, e, now=T0) for e in (signup, purchase)]
        earned[member_id] = sum(r.points for r in receipts)
    refund = Refund(event_id="r-ola", member_id="ola", occurred_at=T0, order_id="o-ola", amount="75.00")
    clawed_back = events.ingest(db, s.cache, s.program_id, refund, now=T0)
    assert clawed_back.points < 0
    net = earned["ola"] + clawed_back.points

    run = queue_earned_summaries(db, start=START, end=END, now=END)
    again = queue_earned_summaries(db, start=START, end=END, now=END)
    deliver_pending(db, mail_settings, now=END)

    assert (run.members, run.queued, again.queued) == (2, 1, 0)  # "bo" did not consent, "idle" earned nothing
    [message] = inbox.received
    assert message["To"] == "ola@example.com"
    assert message["Subject"] == "Twoje punkty od 5 stycznia 2026 do 11 stycznia 2026"
    # What the signup and the purchase earned, less what the refund of half the order took back; the order
    # less its refund.
    assert (
        f"W okresie od 5 stycznia 2026 do 11 stycznia 2026 dodaliśmy do Twojego konta {Formatter('pl').points(net)} "
        "za zakupy o wartości 75,00\N{NO-BREAK SPACE}USD." in body(message)
    )
    with db.read() as conn:
        available = members.view(conn, s.program_id, "ola", now=END).balance.available
    assert f"Stan Twojego konta: {Formatter('pl').points(available)}." in body(message)
