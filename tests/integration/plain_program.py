"""A program with fixed, simple rules for the background-work tests: their figures must not move when the demo
program gains a rule, a campaign or a stamp card."""

from typing import Any

from patron.domain.program import ProgramDocument

RULES = [
    {"id": "purchase", "description": "1 point per dollar", "event": "purchase"},
    {
        "id": "big-basket",
        "description": "50 more from 100 dollars",
        "event": "purchase",
        "when": "event.total_minor >= 10000",
        "points": {"fixed": 50},
    },
    {"id": "review", "description": "20 points a review", "event": "review", "points": {"fixed": 20}},
]


def plain_program(**overrides: Any) -> ProgramDocument:
    base = {
        "name": "Plain",
        "currency": "USD",
        "timezone": "America/New_York",
        "earning": {"points_per_unit": "1", "rounding": "floor"},
        "expiry": {"policy": "after", "months": 12},
        "refunds": {"shortfall": "negative_balance"},
        "rules": RULES,
        "rewards": [{"id": "coupon-5", "name": "$5 off", "cost": 500, "kind": "coupon", "value": "5.00"}],
    }
    return ProgramDocument.model_validate(base | overrides)
