"""A partial refund takes a stamp back when what remains of the order no longer earns it, through the services on
SQLite and PostgreSQL: the stamped order is kept with the member's stored progress, between events."""

from datetime import timedelta
from decimal import Decimal

from patron.domain.events import OrderLine, Purchase, Refund
from patron.services import events, members
from patron.services import progress as progress_store
from tests.conftest import T0
from tests.helpers import check_invariants, program_document, set_up

FREE_CUP = {"id": "free-cup", "name": "A free cup", "cost": 1, "kind": "free_product", "sku": "FROYO-CUP"}
CUP = OrderLine(sku="FROYO-CUP", category="frozen-yogurt", unit_price=Decimal("4.50"))
CD = OrderLine(sku="CD-1", category="jazz", unit_price=Decimal("12.00"))
FROYO_CARD = {
    "id": "froyo",
    "name": "Frozen-yogurt card",
    "when": 'event.lines.exists(l, l.category == "frozen-yogurt")',
    "size": 9,
    "reward": "free-cup",
}


def _refund(n, *lines):
    return Refund(event_id=f"r{n}", member_id="m1", occurred_at=T0 + timedelta(hours=n), order_id="o1", lines=lines)


def _stamps(db, s):
    with db.read() as conn:
        return progress_store.load_one(conn, members.require(conn, s.program_id, "m1").id).cards["froyo"].count


def test_a_partial_refund_by_lines_takes_the_stamp_back_with_the_last_qualifying_item(db):
    s = set_up(db, program_document(rewards=[FREE_CUP], stamp_cards=[FROYO_CARD]), now=T0)
    order = Purchase(
        event_id="p1",
        member_id="m1",
        occurred_at=T0,
        order_id="o1",
        total=Decimal("21.00"),
        lines=(CUP.model_copy(update={"quantity": 2}), CD),
    )
    events.ingest(db, s.cache, s.program_id, order, now=T0)
    assert _stamps(db, s) == 1

    kept = events.ingest(db, s.cache, s.program_id, _refund(1, CUP), now=T0)  # one cup is left
    assert any(r.reason.startswith("1 stamp(s) kept: what remains of the order still meets") for r in kept.rules)
    assert _stamps(db, s) == 1

    taken = events.ingest(db, s.cache, s.program_id, _refund(2, CUP), now=T0)  # the CD is left
    assert any(
        r.reason.startswith("1 stamp(s) of the refunded order removed: what remains of the order no longer meets")
        for r in taken.rules
    )
    assert _stamps(db, s) == 0
    check_invariants(db)
