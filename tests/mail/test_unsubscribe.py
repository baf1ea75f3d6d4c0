"""The unsubscribe link: its page changes nothing until the member confirms; a POST (the page's button or a
mail client's one-click button) withdraws marketing consent; a forged or altered link does nothing."""

import warnings
from urllib.parse import urlparse

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from starlette.exceptions import StarletteDeprecationWarning

from patron.api.app import create_app
from patron.mail import outbox
from patron.mail.delivery import deliver_pending
from patron.mail.kinds import Birthday, MailKind
from patron.services import keys, members
from patron.services.keys import Scope
from patron.store.tables import audit_log
from tests.conftest import T0
from tests.helpers import set_up
from tests.mail.conftest import enrol

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


@pytest.fixture
def member(db):
    setup = set_up(db, now=T0, member_ids=())
    return setup, enrol(db, setup.program_id, "ola", email="ola@example.com", locale="pl-PL", marketing_consent=True)


@pytest.fixture
def client(db, mail_settings):
    with TestClient(create_app(mail_settings, db, clock=lambda: T0)) as test_client:
        yield test_client


def consented(db, setup) -> bool:
    with db.read() as conn:
        return members.view(conn, setup.program_id, "ola", now=T0).marketing_consent


def mailed_link(db, setup, member_id, inbox, mail_settings) -> str:
    """Sends the member a birthday email and returns the path of its unsubscribe link."""
    db.run(
        lambda conn: outbox.queue(
            conn, program_id=setup.program_id, member_id=member_id, kind=MailKind.BIRTHDAY, context=Birthday(), now=T0
        )
    )
    deliver_pending(db, mail_settings, now=T0)
    [message] = inbox.received
    link = urlparse(message["List-Unsubscribe"].strip("<>"))
    return f"{link.path}?{link.query}"


def test_the_link_opens_a_page_in_the_members_language_that_changes_nothing(db, inbox, mail_settings, member, client):
    setup, member_id = member
    path = mailed_link(db, setup, member_id, inbox, mail_settings)

    page = client.get(path)

    assert page.status_code == 200
    assert "Wypisz mnie" in page.text  # the confirm button, in Polish
    assert consented(db, setup)


def test_confirming_withdraws_consent_and_later_marketing_is_not_sent(db, inbox, mail_settings, member, client):
    setup, member_id = member
    path = mailed_link(db, setup, member_id, inbox, mail_settings)

    done = client.post(path)

    assert done.status_code == 200
    assert "Nie będziesz już otrzymywać od nas wiadomości marketingowych." in done.text
    assert not consented(db, setup)
    queued_again = db.run(
        lambda conn: outbox.queue(
            conn, program_id=setup.program_id, member_id=member_id, kind=MailKind.BIRTHDAY, context=Birthday(), now=T0
        )
    )
    assert not queued_again
    with db.read() as conn:
        actions = conn.execute(sa.select(audit_log.c.action, audit_log.c.member_id)).all()
    assert [tuple(a) for a in actions] == [("marketing_consent.withdrawn", member_id)]


def test_one_click_unsubscribe_from_a_mail_client(db, inbox, mail_settings, member, client):
    setup, member_id = member
    path = mailed_link(db, setup, member_id, inbox, mail_settings)

    # RFC 8058: the client POSTs this body to the List-Unsubscribe address.
    reply = client.post(
        path, content="List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )

    assert reply.status_code == 200
    assert not consented(db, setup)
    assert client.post(path).status_code == 200  # a second click is harmless


@pytest.mark.parametrize("forge", ["tampered", "other member", "garbage", "another key"])
def test_a_forged_link_changes_nothing(db, inbox, mail_settings, member, client, forge):
    setup, member_id = member
    path = mailed_link(db, setup, member_id, inbox, mail_settings)
    token = path.split("token=")[1]
    program, _, signature = token.split(".")
    forged = {
        "tampered": f"{program}.{member_id}.{signature[:-2]}AA",
        "other member": f"{program}.{member_id + 1}.{signature}",
        "garbage": "not-a-token",
        "another key": token,
    }[forge]
    if forge == "another key":
        other = mail_settings.model_copy(update={"secret_key": SecretStr("a different key")})
        with TestClient(create_app(other, db, clock=lambda: T0)) as other_client:
            reply = other_client.post(f"/v1/unsubscribe?token={forged}")
    else:
        reply = client.post(f"/v1/unsubscribe?token={forged}")

    assert reply.status_code == 404
    assert consented(db, setup)


def test_the_merchant_records_consent_through_the_api_and_sees_it_withdrawn(db, inbox, mail_settings, client):
    setup = set_up(db, now=T0, member_ids=())
    _, token = db.run(lambda conn: keys.create(conn, setup.program_id, "shop", {Scope.ADMIN}, now=T0))
    auth = {"Authorization": f"Bearer {token}"}

    enrolled = client.put("/v1/members/ola", json={"email": "ola@example.com", "marketing_consent": True}, headers=auth)
    synced = client.put("/v1/members/ola", json={"email": "ola@example.com", "locale": "pl"}, headers=auth)

    assert enrolled.status_code == 201, enrolled.text
    assert synced.json()["marketing_consent"] is True  # not stated: kept
    deliver_pending(db, mail_settings, now=T0)  # the welcome
    [welcome] = inbox.received
    link = urlparse(welcome["List-Unsubscribe"].strip("<>"))
    assert client.post(f"{link.path}?{link.query}").status_code == 200
    assert client.get("/v1/members/ola", headers=auth).json()["marketing_consent"] is False
