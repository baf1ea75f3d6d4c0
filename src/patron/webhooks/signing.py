"""Standard Webhooks signatures (https://www.standardwebhooks.com): `webhook-id`, `webhook-timestamp` and
`webhook-signature`, an HMAC-SHA256 of "id.timestamp.body" under a `whsec_` secret."""

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's marker, not a secret


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def headers(message_id: str, body: str, at: datetime, secrets_in_use: Sequence[str]) -> dict[str, str]:
    """The three headers. While a rotated-out secret is still honoured, the signature header carries a
    signature by each secret (space separated), so a receiver holding either one verifies the message."""
    at = at.astimezone(UTC)  # the library reads the time as UTC whatever its zone says
    signatures = " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets_in_use)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }
