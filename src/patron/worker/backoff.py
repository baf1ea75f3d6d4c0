"""When to try again after a failure."""

import random
from datetime import timedelta


def retry_delay(attempt: int, *, base: float, cap: float) -> timedelta:
    """Exponential in the attempt number, with 'equal jitter': half the delay is fixed and half random, so a
    burst of failures (an endpoint down for everyone) spreads its retries out but none comes back at once."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return timedelta(seconds=ceiling / 2 + random.uniform(0, ceiling / 2))  # noqa: S311 - timing, not secrets
