"""Unsubscribe tokens: which member a link is for, signed so that nobody can unsubscribe someone else.

They do not expire: an unsubscribe link must keep working as long as the mail that carries it can be read.
Rotating `PATRON_SECRET_KEY` invalidates every link sent before.
"""

import base64
import hashlib
import hmac
from dataclasses import dataclass

_PURPOSE = b"patron.unsubscribe.v1:"


@dataclass(frozen=True, slots=True)
class Subscriber:
    program_id: int
    member_id: int


def sign(subscriber: Subscriber, secret: str) -> str:
    payload = f"{subscriber.program_id}.{subscriber.member_id}"
    return f"{payload}.{_signature(payload, secret)}"


def verify(token: str, secret: str) -> Subscriber | None:
    """The member a token names, or None if it was not signed with `secret` or is malformed."""
    parts = token.split(".")
    if len(parts) != 3 or not all(part.isascii() and part.isdigit() for part in parts[:2]):
        return None
    payload = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(parts[2], _signature(payload, secret)):
        return None
    return Subscriber(program_id=int(parts[0]), member_id=int(parts[1]))


def _signature(payload: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), _PURPOSE + payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
