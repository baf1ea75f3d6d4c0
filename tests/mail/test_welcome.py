"""Enrolling a member sends the welcome; importing members from another system does not."""

from patron.domain.members import MemberProfile
from patron.mail.delivery import deliver_pending
from patron.services import imports, members
from tests.conftest import T0
from tests.helpers import set_up
from tests.mail.conftest import body


def test_a_new_member_is_welcomed_once_in_their_language(db, inbox, mail_settings):
    s = set_up(db, now=T0, member_ids=())
    profile = MemberProfile(email="ola@example.com", locale="pl-PL")
    members.upsert(db, s.program_id, "ola", profile, now=T0)
    members.upsert(db, s.program_id, "ola", profile, now=T0)  # a profile update is no new member
    members.upsert(db, s.program_id, "no-address", MemberProfile(), now=T0)

    deliver_pending(db, mail_settings, now=T0)

    [welcome] = inbox.received
    assert welcome["To"] == "ola@example.com"
    assert welcome["Subject"] == "Witamy w programie Patron Records loyalty"
    assert "Od teraz zbierasz punkty przy każdym zakupie." in body(welcome)


def test_imported_members_are_not_welcomed(db, inbox, mail_settings):
    s = set_up(db, now=T0, member_ids=())
    rows = [
        (2, {"member_id": "m-1", "email": "old@example.com"}),
        (3, {"member_id": "m-2", "email": "older@example.com"}),
    ]

    report = imports.import_members(db, s.program_id, rows, now=T0)

    assert report.accepted == 2
    assert deliver_pending(db, mail_settings, now=T0).sent == 0
    assert inbox.received == []
