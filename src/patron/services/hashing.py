"""Stable fingerprints of requests, so a retry can be told apart from a different request with the same id."""

import hashlib
import json
from typing import Any

# One encoder for every call: json.dumps builds a new one whenever it is given options. The output must stay
# byte for byte what it always was, since stored fingerprints are compared with new ones on every retry.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def request_fingerprint(payload: Any) -> str:
    return hashlib.sha256(_CANONICAL.encode(payload).encode()).hexdigest()
