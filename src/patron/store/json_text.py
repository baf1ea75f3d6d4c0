"""JSON text for what the database stores (receipts, messages, documents, bulk rows), written by orjson.

The standard library's encoder was a tenth of an import's CPU: every event stores its receipt and its
announcements as JSON. orjson writes the same documents (compact, UTF-8 rather than \\u escapes, which read back
equal) several times faster. Request fingerprints do not come through here: their text must stay byte for byte
what it always was (services/hashing.py).
"""

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson

# Times go through `default` rather than orjson's own formatting, so they read exactly as isoformat() wrote them
# before; keys that are not text become text, as the standard library does.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _plain(value: Any) -> Any:
    """Times as ISO text and Decimals as text: what bulk rows hold beyond plain JSON."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return _refuse(value)


def dumps(value: Any) -> str:
    """For SQLAlchemy's JSON columns (and psycopg's JSON adapter): refuses what json.dumps refuses (times,
    Decimals, dataclasses), so a column given a value by mistake still fails loudly. A plain function, not one
    made by another: psycopg caches its JSON adapters by function and warns about closures."""
    try:
        return orjson.dumps(value, default=_refuse, option=_OPTIONS).decode()
    except orjson.JSONEncodeError:
        # orjson stops at 64-bit integers, which Python's JSON writes; anything else unwritable still raises.
        return _STANDARD.encode(value)


def dumps_plain(value: Any) -> str:
    """For rows written in bulk (COPY text, json_to_recordset): money and times as text the columns read back."""
    try:
        return orjson.dumps(value, default=_plain, option=_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return _STANDARD_PLAIN.encode(value)


_STANDARD = json.JSONEncoder()
_STANDARD_PLAIN = json.JSONEncoder(default=_plain, check_circular=False)
loads = orjson.loads
