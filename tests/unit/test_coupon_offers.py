"""Whether a coupon applies to a cart, and what it takes off: the pure rules."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from patron.domain.carts import Cart
from patron.domain.coupons import BadPattern, Offer, Usage, check_pattern, fill_pattern, judge

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def cart(total: str, *lines: tuple[str, str], shipping: str = "0") -> Cart:
    return Cart.model_validate(
        {"total": total, "shipping": shipping, "lines": [{"sku": s, "unit_price": p} for s, p in lines]}
    )


def offer(**fields) -> Offer:
    return Offer.model_validate(fields)


@pytest.mark.parametrize(
    ("fields", "the_cart", "discount"),
    [
        ({"kind": "amount_off", "amount": "5"}, cart("30"), "5"),
        ({"kind": "amount_off", "amount": "50"}, cart("30"), "30"),  # never more than the cart
        ({"kind": "percent_off", "percent": "15"}, cart("33.33"), "4.99"),  # 4.9995 rounds down
        ({"kind": "free_product", "sku": "cup"}, cart("12", ("cup", "4.50"), ("cone", "7.50")), "4.50"),
        ({"kind": "free_shipping"}, cart("40", shipping="6.90"), "6.90"),
        ({"kind": "spend_and_save", "amount": "20", "min_spend": "200"}, cart("200"), "20"),
        ({"kind": "trial", "sku": "matcha"}, cart("9", ("matcha", "3.20")), "3.20"),
        ({"kind": "trial", "sku": "matcha", "percent": "50"}, cart("9", ("matcha", "3.25")), "1.62"),
    ],
)
def test_each_kind_takes_off_what_it_says(fields, the_cart, discount):
    verdict = judge(offer(**fields), the_cart, now=NOW, usage=Usage())
    assert verdict.applies, verdict.reason
    assert verdict.discount == Decimal(discount)


def test_spend_and_save_below_the_threshold_says_how_much_more():
    verdict = judge(offer(kind="spend_and_save", amount="20", min_spend="200"), cart("188"), now=NOW, usage=Usage())
    assert not verdict.applies
    assert verdict.spend_more == Decimal(12)
    assert "12 more" in verdict.reason


def test_a_product_coupon_needs_the_product_in_the_cart():
    verdict = judge(offer(kind="free_product", sku="cup"), cart("10", ("cone", "10")), now=NOW, usage=Usage())
    assert not verdict.applies
    assert verdict.field == "cart.lines"


def test_validity_window_is_half_open():
    window = offer(kind="amount_off", amount="5", valid_from=NOW, valid_until=NOW + timedelta(days=1))
    assert not judge(window, cart("10"), now=NOW - timedelta(seconds=1), usage=Usage()).applies
    assert judge(window, cart("10"), now=NOW, usage=Usage()).applies
    late = judge(window, cart("10"), now=NOW + timedelta(days=1), usage=Usage())
    assert not late.applies
    assert "expired" in late.reason


def test_single_use_and_member_limits():
    single = offer(kind="amount_off", amount="5")
    assert judge(single, cart("10"), now=NOW, usage=Usage(code_uses=1)).reason == "already used"
    limited = offer(kind="amount_off", amount="5", uses_per_code=100, per_member_limit=2)
    assert judge(limited, cart("10"), now=NOW, usage=Usage(code_uses=5, member_uses=1)).applies
    assert not judge(limited, cart("10"), now=NOW, usage=Usage(code_uses=5, member_uses=2)).applies
    anonymous = judge(limited, cart("10"), now=NOW, usage=Usage(), member_known=False)
    assert not anonymous.applies
    assert anonymous.field == "member_id"


def test_a_trial_is_once_per_member_by_default():
    trial = offer(kind="trial", sku="matcha", uses_per_code=1000)
    assert not judge(trial, cart("5", ("matcha", "3")), now=NOW, usage=Usage(member_uses=1)).applies


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "amount_off"},
        {"kind": "amount_off", "amount": "0"},
        {"kind": "percent_off", "percent": "101"},
        {"kind": "spend_and_save", "amount": "20"},
        {"kind": "free_shipping", "amount": "5"},
        {
            "kind": "amount_off",
            "amount": "5",
            "valid_from": "2026-02-01T00:00:00Z",
            "valid_until": "2026-01-01T00:00:00Z",
        },
        {"kind": "amount_off", "amount": "5", "bogus": 1},
    ],
)
def test_incoherent_offers_are_refused(fields):
    with pytest.raises(ValidationError):
        Offer.model_validate(fields)


def test_patterns_must_leave_room_for_guessing_to_fail():
    check_pattern("SPRING-####-####", 10_000)
    with pytest.raises(BadPattern):
        check_pattern("SPRING-###", 1)
    with pytest.raises(BadPattern):
        check_pattern("########", 10**7)
    assert fill_pattern("AB-##-#", "XYZ") == "AB-XY-Z"


def test_a_trial_is_for_a_product_new_to_the_member():
    trial = offer(kind="trial", sku="matcha")
    verdict = judge(trial, cart("5", ("matcha", "3")), now=NOW, usage=Usage(bought_before=True))
    assert not verdict.applies
    assert "bought matcha before" in verdict.reason
