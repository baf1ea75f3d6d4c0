"""Opaque cursors for keyset pagination: the client hands back what it was given."""

import base64

from patron.services.errors import Invalid

MAX_ID = 2**63 - 1  # ids are signed 64-bit columns


def encode(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode(cursor: str | None) -> int:
    if not cursor:
        return 0
    refused = Invalid("not a cursor this API gave out", field="cursor")
    try:
        version, _, value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
        if version != "v1":
            raise ValueError(version)
        last_id = int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise refused from exc
    # Only what encode() gives out: a forged id past 64 bits would fail in the database (a 500), and int() also
    # reads " 5", "5_000" and other digits than ASCII ones.
    if not 0 <= last_id <= MAX_ID or encode(last_id) != cursor:
        raise refused
    return last_id
