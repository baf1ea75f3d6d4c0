"""The referral fraud screen and the qualifying purchase, as pure rules."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from patron.domain.referrals import (
    Outcome,
    Party,
    Recent,
    ReferralScheme,
    judge_purchase,
    refund_undoes,
    screen,
)

SCHEME = ReferralScheme.model_validate(
    {
        "referrer": {"points": 100},
        "referee": {"coupon_batch": "welcome"},
        "min_spend": "20",
        "within_days": 30,
        "max_per_referrer_per_week": 3,
        "ip_burst": {"max_signups": 2, "minutes": 60},
    }
)
ANN = Party("ann@example.com", "+44 20 7946 0001", frozenset({"device:aaaaaaaaaaaaaaaa"}))
QUIET = Recent(0, 0)


@pytest.mark.parametrize(
    ("referee", "recent", "reason"),
    [
        (Party(" Ann@Example.com", None, frozenset()), QUIET, "same email"),
        (Party(None, "+442079460001", frozenset()), QUIET, "same phone"),
        (Party(None, None, frozenset({"device:aaaaaaaaaaaaaaaa"})), QUIET, "fingerprint"),
        (Party("bob@example.com", None, frozenset()), Recent(3, 0), "cap of 3"),
        (Party("bob@example.com", None, frozenset()), Recent(0, 2), "IP address"),
    ],
)
def test_refusals_say_why(referee, recent, reason):
    found = screen(SCHEME, ANN, referee, recent)
    assert found is not None
    assert reason in found


def test_a_genuine_referral_passes():
    assert (
        screen(
            SCHEME, ANN, Party("bob@example.com", "+1 555 0100", frozenset({"device:bbbbbbbbbbbbbbbb"})), Recent(2, 1)
        )
        is None
    )


def test_qualifying_purchase():
    signed = datetime(2026, 3, 1, tzinfo=UTC)
    assert judge_purchase(SCHEME, signed, Decimal(20), signed + timedelta(days=30)) is Outcome.QUALIFIES
    assert judge_purchase(SCHEME, signed, Decimal("19.99"), signed + timedelta(days=1)) is Outcome.TOO_SMALL
    assert judge_purchase(SCHEME, signed, Decimal(50), signed + timedelta(days=30, seconds=1)) is Outcome.TOO_LATE
    assert judge_purchase(SCHEME, signed, Decimal(50), signed - timedelta(seconds=1)) is Outcome.BEFORE


def test_a_refund_undoes_the_referral_below_the_minimum_spend():
    assert not refund_undoes(SCHEME, Decimal(50), Decimal(30))
    assert refund_undoes(SCHEME, Decimal(50), Decimal("30.01"))
    free = SCHEME.model_copy(update={"min_spend": Decimal(0)})
    assert not refund_undoes(free, Decimal(50), Decimal(49))
    assert refund_undoes(free, Decimal(50), Decimal(50))


def test_a_reward_must_give_something():
    with pytest.raises(ValidationError):
        ReferralScheme.model_validate({"referrer": {}, "referee": {"points": 5}})
