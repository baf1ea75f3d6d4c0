"""Stable fingerprints of requests, so a retry can be told apart from a different request with the same id."""

import hashlib
import json
from typing import Any


def request_fingerprint(payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
