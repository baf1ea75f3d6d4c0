"""Opaque cursors for keyset pagination: the client hands back what it was given."""

import base64

from patron.services.errors import Invalid


def encode(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        version, _, value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
        if version != "v1":
            raise ValueError(version)
        return int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("not a cursor this API gave out", field="cursor") from exc
