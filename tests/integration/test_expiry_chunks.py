"""Expiry of many members at once: a chunk that spans programs posts one balanced journal transaction per program,
moves each member's balance by what expired of their own lots, and announces it once per member."""

import pytest
import sqlalchemy as sa

from patron.services import maintenance, outbox
from patron.store.background import outbox as outbox_table
from patron.store.tables import journal
from tests.conftest import T0
from tests.helpers import program_accounts, set_up
from tests.integration.test_scenarios import DAY, assert_conserved, balance_of, document, fund


def expired_messages(db):
    """(program id, member external id, data) of every points.expired message."""
    with db.read() as conn:
        ids = conn.execute(
            sa.select(outbox_table.c.id).where(outbox_table.c.type == "points.expired").order_by(outbox_table.c.id)
        ).scalars()
        found = [(m.program_id, m.member, m.data) for m in outbox.read_messages(conn, list(ids))]
    return sorted(found, key=lambda row: (row[0], row[1], row[2]["points"]))


def test_one_run_over_two_programs_posts_a_transaction_per_program_and_a_message_per_member(db):
    shop = set_up(db, document(), member_ids=("ann", "bob"), now=T0, slug="shop")
    cafe = set_up(db, document(), member_ids=("cy",), now=T0, slug="cafe")
    fund(shop, "ann", 100)
    fund(cafe, "cy", 70)
    fund(shop, "ann", 50)  # ann's two lots sit either side of cy's
    fund(shop, "bob", 30)
    fund(shop, "bob", 40, at=T0 + 10 * DAY)  # not yet due on day 31

    report = maintenance.expire(db, now=T0 + 31 * DAY)

    assert (report.lots, report.points, report.members, report.transactions) == (4, 250, 3, 2)
    assert program_accounts(db, shop.program_id)["expired"] == 180
    assert program_accounts(db, cafe.program_id)["expired"] == 70
    with db.read() as conn:
        memos = sorted(conn.execute(sa.select(journal.c.memo).where(journal.c.kind == "expire")).scalars())
    assert memos == ["expire: 180 points of 2 member(s)", "expire: 70 points of 1 member(s)"]
    assert (balance_of(db, shop, "ann").available, balance_of(db, shop, "bob").available) == (0, 40)
    assert balance_of(db, cafe, "cy").available == 0
    assert sorted(expired_messages(db), key=lambda row: row[1]) == [
        (shop.program_id, "ann", {"points": 150, "lots": 2}),
        (shop.program_id, "bob", {"points": 30, "lots": 1}),
        (cafe.program_id, "cy", {"points": 70, "lots": 1}),
    ]
    assert_conserved(db, shop)
    assert_conserved(db, cafe)

    assert maintenance.expire(db, now=T0 + 31 * DAY).lots == 0
    assert len(expired_messages(db)) == 3


@pytest.mark.parametrize("workers", [1, 3])
def test_small_chunks_expire_every_lot_of_every_member_once(db, workers):
    s = set_up(db, document(), member_ids=tuple(f"m{i}" for i in range(7)), now=T0)
    for i in range(7):
        for points in range(1, i + 2):
            fund(s, f"m{i}", points)

    # Three workers on PostgreSQL: chunks that share a member run side by side and queue on its lock.
    report = maintenance.expire(db, now=T0 + 31 * DAY, chunk=4, workers=workers)

    assert (report.lots, report.points) == (28, 84)  # a member whose lots straddle two chunks hears twice
    per_member: dict[str, int] = {}
    for _, member, data in expired_messages(db):
        per_member[member] = per_member.get(member, 0) + data["points"]
    assert per_member == {f"m{i}": sum(range(1, i + 2)) for i in range(7)}
    assert all(balance_of(db, s, f"m{i}").available == 0 for i in range(7))
    assert_conserved(db, s)
    assert maintenance.expire(db, now=T0 + 31 * DAY, chunk=4, workers=workers).lots == 0
