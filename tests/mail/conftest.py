"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, and settings pointing at it."""

import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import SecretStr

from patron.domain.members import MemberProfile
from patron.settings import Settings
from patron.store import members as member_rows
from patron.store.database import Database
from tests.conftest import T0

SECRET = "test-secret-key-for-unsubscribe-links"


@dataclass
class Inbox:
    """What the server accepted, and addresses it refuses (550) or defers (451)."""

    received: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    defer: set[str] = field(default_factory=set)

    # aiosmtpd calls hooks by these names.
    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        if address in self.defer:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.envelopes.append(envelope)
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(message)
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.received if m["To"] == address]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def mail_settings(inbox: Inbox) -> Settings:
    return Settings(
        smtp_host="127.0.0.1",
        smtp_port=inbox.port,  # type: ignore[attr-defined]
        smtp_security="none",
        smtp_timeout_seconds=5,
        mail_from="Kawiarnia <loyalty@kawiarnia.example>",
        public_url="http://patron.example",
        secret_key=SecretStr(SECRET),
    )


def body(message: EmailMessage, subtype: str = "plain") -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def enrol(db: Database, program_id: int, external_id: str, **profile: Any) -> int:
    """A member written straight to the store, so no welcome mail is queued (the service's enrolment queues
    one: see test_welcome); returns the member's row id."""
    return db.run(lambda conn: member_rows.create(conn, program_id, external_id, MemberProfile(**profile), T0).id)
