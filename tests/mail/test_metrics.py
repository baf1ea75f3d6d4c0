"""/metrics shows the mail that waits or failed, read from the database whichever process sends it."""

import warnings

from prometheus_client.parser import text_string_to_metric_families
from starlette.exceptions import StarletteDeprecationWarning

from patron.api.app import create_app
from patron.mail import outbox
from patron.mail.kinds import MailKind, RewardRedeemed
from tests.conftest import T0
from tests.helpers import set_up
from tests.mail.conftest import enrol

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


def test_the_mail_outbox_is_a_gauge(db, mail_settings):
    setup = set_up(db, now=T0, member_ids=())
    receipt = RewardRedeemed(reward_name="Kawa", cost=10, balance=0)
    for name in ("a", "b"):
        member_id = enrol(db, setup.program_id, name, email=f"{name}@example.com")
        db.run(
            lambda conn, m=member_id: outbox.queue(
                conn, program_id=setup.program_id, member_id=m, kind=MailKind.REWARD_REDEEMED, context=receipt, now=T0
            )
        )

    with TestClient(create_app(mail_settings, db, clock=lambda: T0)) as client:
        text = client.get("/metrics").text

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("patron_mail_outbox", (("status", "queued"),))] == 2
