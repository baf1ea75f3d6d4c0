"""The program document's coupon_batches and raffles sections: what they accept, and errors that name the path."""

import pytest
from pydantic import ValidationError

from patron.domain.program import ProgramDocument
from patron.services.programs import read_document
from tests.helpers import DEMO_PROGRAM

BASE = {
    "name": "Shop",
    "currency": "USD",
    "rewards": [{"id": "single", "name": "A single", "cost": 300, "kind": "free_product", "sku": "CD-SINGLE"}],
}
BATCH = {"id": "spring", "offer": {"kind": "amount_off", "amount": "5.00"}, "count": 10}
RAFFLE = {
    "id": "party",
    "prize_reward_id": "single",
    "winners": 1,
    "entry_cost": 100,
    "max_entries_per_member": 3,
    "draws_at": "2030-01-01T20:00:00Z",
}


def errors(**sections) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        ProgramDocument.model_validate({**BASE, **sections})
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in caught.value.errors()]


def test_the_demo_declares_its_coupon_batch_and_raffle():
    demo = read_document(DEMO_PROGRAM)
    assert [(b.id, b.count, b.offer.describe()) for b in demo.coupon_batches] == [
        ("spend-200-save-20", 100, "spend 200.00, get 20.00 off")
    ]
    assert [(r.id, r.prize_reward_id, r.entry_cost) for r in demo.raffles] == [("listening-party", "free-single", 100)]


def test_a_batch_of_codes_issued_one_by_one_has_no_shared_codes():
    document = ProgramDocument.model_validate({**BASE, "coupon_batches": [{**BATCH, "count": 0}]})
    assert document.coupon_batches[0].pattern == "####-####-####"


@pytest.mark.parametrize(
    ("sections", "path", "words"),
    [
        ({"coupon_batches": [{**BATCH, "pattern": "SPRING-####"}]}, "coupon_batches.0.pattern", "at least 8 '#'"),
        ({"coupon_batches": [{**BATCH, "pattern": "spring-########"}]}, "coupon_batches.0.pattern", "pattern"),
        ({"coupon_batches": [{**BATCH, "count": 100_001}]}, "coupon_batches.0.count", "100000"),
        ({"coupon_batches": [{**BATCH, "id": "raffle.party"}]}, "coupon_batches.0.id", "kept for prize codes"),
        ({"coupon_batches": [{**BATCH, "offer": {"kind": "percent_off"}}]}, "coupon_batches.0.offer", "percent"),
        ({"coupon_batches": [BATCH, BATCH]}, "coupon_batches", "used twice"),
        ({"raffles": [{**RAFFLE, "prize_reward_id": "album"}]}, "raffles.0.prize_reward_id", "no reward 'album'"),
        ({"raffles": [{**RAFFLE, "draws_at": "2030-01-01T20:00:00"}]}, "raffles.0.draws_at", "timezone"),
        ({"raffles": [{**RAFFLE, "entry_cost": 0}]}, "raffles.0.entry_cost", "greater than 0"),
        ({"raffles": [{**RAFFLE, "seed": "ab" * 32}]}, "raffles.0.seed", "not permitted"),
    ],
)
def test_a_bad_section_is_refused_naming_its_path(sections, path, words):
    found = errors(**sections)
    assert any(where == path and words in message for where, message in found), found
