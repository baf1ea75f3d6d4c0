"""store.bulk writes and finds many rows at once: what goes in must come back as the single-row paths store it."""

from collections.abc import Sequence
from datetime import timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from patron.domain.events import Purchase
from patron.services import bulk_ingest
from patron.services.views import EventReceipt
from patron.store.background import outbox
from patron.store.bulk import COPY_ROWS, Together, allocate_ids, insert_rows, rows_by_key, upsert_rows
from patron.store.tables import events, member_progress, members, orders
from tests.conftest import T0
from tests.helpers import set_up


def test_rows_by_key_finds_each_wanted_row_of_the_selection_once(db):
    first = set_up(db, member_ids=("a", "b", "c"), now=T0, slug="first")
    other = set_up(db, member_ids=("a", "z"), now=T0, slug="other")
    with db.read() as conn:
        found = rows_by_key(
            conn,
            [members.c.external_id, members.c.program_id],
            scope=members.c.program_id,
            scope_id=first.program_id,
            key=members.c.external_id,
            values=["a", "c", "z", "nobody"],
        ).all()
    assert sorted((r.external_id, r.program_id) for r in found) == [("a", first.program_id), ("c", first.program_id)]
    assert other.program_id != first.program_id


def test_rows_by_key_keeps_column_types(db):
    s = set_up(db, member_ids=("m1",), now=T0)
    with db.write() as conn:
        member_id = conn.execute(sa.select(members.c.id)).scalar_one()
        insert_rows(
            conn,
            orders,
            [
                {
                    "program_id": s.program_id,
                    "order_id": "o-1",
                    "member_id": member_id,
                    "total": Decimal("12.3456"),
                    "earned": 12,
                    "refunded": Decimal(0),
                    "clawed_back": 0,
                    "occurred_at": T0,
                }
            ],
        )
    with db.read() as conn:
        (row,) = rows_by_key(
            conn,
            list(orders.c),
            scope=orders.c.program_id,
            scope_id=s.program_id,
            key=orders.c.order_id,
            values=["o-1"],
        ).all()
    assert row.total == Decimal("12.3456")
    assert row.occurred_at == T0


def test_insert_rows_stores_times_as_the_same_instants_and_refuses_naive_ones(db):
    s = set_up(db, member_ids=("m1",), now=T0)
    elsewhere = T0.astimezone(timezone(timedelta(hours=-5)))
    with db.write() as conn:
        member_id = conn.execute(sa.select(members.c.id)).scalar_one()
        ids = allocate_ids(conn, events, 2)
        insert_rows(
            conn,
            events,
            [
                {
                    "id": event_row,
                    "program_id": s.program_id,
                    "event_id": f"e{event_row}",
                    "member_id": member_id,
                    "type": "signup",
                    "occurred_at": at,
                    "request_hash": "0" * 64,
                    "response": {"nested": [1, "two", None]},
                    "created_at": T0,
                }
                for event_row, at in zip(ids, [elsewhere, elsewhere + timedelta(minutes=1)], strict=True)
            ],
        )
    with db.read() as conn:
        stored = conn.execute(sa.select(events.c.occurred_at, events.c.response).order_by(events.c.id)).all()
    assert [r.occurred_at for r in stored] == [T0, T0 + timedelta(minutes=1)]
    assert all(r.occurred_at.utcoffset() == timedelta(0) for r in stored)
    assert stored[0].response == {"nested": [1, "two", None]}
    with pytest.raises((ValueError, sa.exc.StatementError)), db.write() as conn:
        insert_rows(
            conn,
            orders,
            [
                {
                    "program_id": s.program_id,
                    "order_id": "naive",
                    "member_id": member_id,
                    "total": Decimal(1),
                    "earned": 0,
                    "refunded": Decimal(0),
                    "clawed_back": 0,
                    "occurred_at": T0.replace(tzinfo=None),
                }
            ],
        )


@pytest.mark.parametrize("count", [1, COPY_ROWS + 8])  # a few rows and many take different paths
def test_insert_rows_stores_what_a_plain_insert_stores(db, count):
    s = set_up(db, member_ids=("m1",), now=T0)
    elsewhere = timezone(timedelta(hours=5, minutes=30))

    def rows(tag: str, member_id: int) -> list[dict[str, object]]:
        return [
            {
                "program_id": s.program_id,
                "order_id": f"{tag}-{n}",
                "member_id": member_id,
                "total": Decimal("12.3456") + n,
                "earned": n,
                "refunded": Decimal("0.5"),
                "clawed_back": 0,
                "occurred_at": (T0 + timedelta(seconds=n)).astimezone(elsewhere),
            }
            for n in range(count)
        ]

    def messages(tag: str, member_id: int) -> list[dict[str, object]]:
        return [
            {
                "message_id": f"{tag}-{n}",
                "program_id": s.program_id,
                "member_id": member_id,
                "type": "points.earned",
                "data": {"points": n, "nested": [1, "two", None, {"é": 1.5}]},
                "dedupe_key": None,
                "occurred_at": T0.astimezone(elsewhere),
                "created_at": T0,
            }
            for n in range(count)
        ]

    with db.write() as conn:
        member_id = conn.execute(sa.select(members.c.id)).scalar_one()
        insert_rows(conn, orders, rows("bulk", member_id))
        conn.execute(sa.insert(orders), rows("plain", member_id))
        insert_rows(conn, outbox, messages("bulk", member_id))
        conn.execute(sa.insert(outbox), messages("plain", member_id))
    with db.read() as conn:
        stored_orders = conn.execute(sa.select(orders.c.order_id, *[c for c in orders.c if c.name != "order_id"])).all()
        stored_messages = conn.execute(
            sa.select(outbox.c.message_id, outbox.c.occurred_at, sa.cast(outbox.c.data, sa.Text))
        ).all()
    # Text too: a json column keeps the text it was given, and receivers get the messages as stored.
    assert _tagged(stored_orders, "bulk") == _tagged(stored_orders, "plain")
    assert _tagged(stored_messages, "bulk") == _tagged(stored_messages, "plain")
    assert len(_tagged(stored_messages, "bulk")) == count


def _tagged(found: Sequence[sa.Row[Any]], tag: str) -> list[tuple[str, tuple[Any, ...]]]:
    """The rows whose key starts with `tag`, keyed by what follows it."""
    return sorted((r[0].removeprefix(f"{tag}-"), tuple(r[1:])) for r in found if r[0].startswith(f"{tag}-"))


@pytest.mark.parametrize("count", [1, COPY_ROWS + 8])
def test_insert_rows_refuses_naive_times_however_many_rows(db, count):
    s = set_up(db, member_ids=("m1",), now=T0)
    with db.read() as conn:
        member_id = conn.execute(sa.select(members.c.id)).scalar_one()
    with pytest.raises((ValueError, sa.exc.StatementError)), db.write() as conn:
        insert_rows(
            conn,
            orders,
            [
                {
                    "program_id": s.program_id,
                    "order_id": f"o-{n}",
                    "member_id": member_id,
                    "total": Decimal(1),
                    "earned": 0,
                    "refunded": Decimal(0),
                    "clawed_back": 0,
                    "occurred_at": T0.replace(tzinfo=None) if n == count - 1 else T0,
                }
                for n in range(count)
            ],
        )
    with db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(orders)).scalar_one() == 0


@pytest.mark.parametrize("count", [1, COPY_ROWS + 8])
def test_insert_rows_reports_a_taken_key_as_an_integrity_error(db, count):
    """Callers retry a lost race on IntegrityError (batch ingest one event at a time): the driver's own error
    would slip past them."""
    s = set_up(db, member_ids=("m1",), now=T0)
    with db.read() as conn:
        member_id = conn.execute(sa.select(members.c.id)).scalar_one()
    rows = [
        {
            "program_id": s.program_id,
            "order_id": f"o-{n}",
            "member_id": member_id,
            "total": Decimal(1),
            "earned": 0,
            "refunded": Decimal(0),
            "clawed_back": 0,
            "occurred_at": T0,
        }
        for n in range(count)
    ]
    with db.write() as conn:
        insert_rows(conn, orders, rows[-1:])
    with pytest.raises(sa.exc.IntegrityError), db.write() as conn:
        insert_rows(conn, orders, rows)
    with db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(orders)).scalar_one() == 1


def test_allocated_ids_are_new_and_ascending(db):
    set_up(db, member_ids=("m1", "m2"), now=T0)
    with db.write() as conn:
        taken = set(conn.execute(sa.select(members.c.id)).scalars())
        drawn = allocate_ids(conn, members, 3)
    assert drawn == sorted(drawn)
    assert len(set(drawn)) == 3
    assert not taken & set(drawn)


def test_writes_held_together_go_in_as_one_statement_when_flushed(db):
    s = set_up(db, member_ids=("m1",), now=T0)
    order = {
        "program_id": s.program_id,
        "member_id": None,
        "total": Decimal("9.99"),
        "earned": 9,
        "refunded": Decimal(0),
        "clawed_back": 0,
        "occurred_at": T0,
    }
    statements: list[str] = []
    with db.write() as conn:
        member_id = conn.execute(sa.select(members.c.id)).scalar_one()
        together = Together(conn)
        # Two writes with the same parameter name (`rows`), to two tables: each must keep its own rows.
        insert_rows(conn, orders, [order | {"order_id": "o-1", "member_id": member_id}], together=together)
        insert_rows(
            conn, member_progress, [{"member_id": member_id, "state": {"v": 1}, "updated_at": T0}], together=together
        )
        held = conn.execute(sa.select(sa.func.count()).select_from(orders)).scalar_one()
        sa.event.listen(conn, "before_cursor_execute", lambda *args: statements.append(args[2]))
        together.flush()
        together.flush()  # nothing left: sends nothing
    with db.read() as conn:
        stored_orders = conn.execute(sa.select(orders.c.order_id, orders.c.member_id, orders.c.total)).all()
        stored_progress = conn.execute(sa.select(member_progress.c.member_id, member_progress.c.state)).all()
    assert [tuple(r) for r in stored_orders] == [("o-1", member_id, Decimal("9.99"))]
    assert [tuple(r) for r in stored_progress] == [(member_id, {"v": 1})]
    if db.engine.dialect.name == "postgresql":
        assert held == 0, "held writes are not sent before the flush"
        assert len(statements) == 1, "the held writes went as one statement"
    else:  # SQLite writes at once: there is no round trip to save
        assert held == 1
        assert statements == []


def test_upsert_rows_replaces_the_named_columns_of_a_taken_key(db):
    set_up(db, member_ids=("m1", "m2"), now=T0)
    with db.write() as conn:
        m1, m2 = conn.execute(sa.select(members.c.id).order_by(members.c.id)).scalars()
        upsert_rows(
            conn,
            member_progress,
            [{"member_id": m1, "state": {"v": 1}, "updated_at": T0}],
            keys=["member_id"],
            replace=["state", "updated_at"],
        )
        upsert_rows(
            conn,
            member_progress,
            [
                {"member_id": m1, "state": {"v": 2}, "updated_at": T0 + timedelta(days=1)},
                {"member_id": m2, "state": {"v": 3}, "updated_at": T0},
            ],
            keys=["member_id"],
            replace=["state", "updated_at"],
        )
    with db.read() as conn:
        stored = conn.execute(sa.select(member_progress).order_by(member_progress.c.member_id)).all()
    assert [(r.member_id, r.state, r.updated_at) for r in stored] == [
        (m1, {"v": 2}, T0 + timedelta(days=1)),
        (m2, {"v": 3}, T0),
    ]


def test_a_batch_stores_each_receipt_exactly_as_it_answers_it(db):
    s = set_up(db, member_ids=("m1", "m2"), now=T0)
    batch = [
        Purchase(
            event_id=f"e{n}",
            member_id=f"m{n % 2 + 1}",
            occurred_at=T0 + timedelta(minutes=n),
            order_id=f"o{n}",
            total=Decimal(40 + n),
        )
        for n in range(4)
    ]
    outcomes = db.run(lambda conn: bulk_ingest.ingest_many(conn, s.cache, s.program_id, batch, now=T0))
    with db.read() as conn:
        stored = {r.event_id: r.response for r in conn.execute(sa.select(events.c.event_id, events.c.response))}
    for event, outcome in zip(batch, outcomes, strict=True):
        assert isinstance(outcome, tuple)
        receipt, replayed = outcome
        assert not replayed
        assert isinstance(receipt, EventReceipt)
        assert receipt.transaction_id is not None
        assert stored[event.event_id] == receipt.model_dump(mode="json")
    again = db.run(lambda conn: bulk_ingest.ingest_many(conn, s.cache, s.program_id, batch, now=T0))
    assert [o[0] for o in again if isinstance(o, tuple)] == [o[0] for o in outcomes if isinstance(o, tuple)]
    assert all(isinstance(o, tuple) and o[1] for o in again)
