"""A member's ledger history, a page at a time, through the service that the API and the CLI call."""

from datetime import timedelta

import pytest

from patron.domain.events import Purchase
from patron.services import events, members
from patron.services.errors import Invalid
from tests.conftest import T0
from tests.helpers import set_up


def test_history_pages_end_with_no_cursor(db):
    s = set_up(db, now=T0)
    for n in range(3):
        at = T0 + timedelta(minutes=n)
        purchase = Purchase(event_id=f"p{n}", member_id="m1", occurred_at=at, order_id=f"o{n}", total="10")
        events.ingest(db, s.cache, s.program_id, purchase, now=at)
    with db.read() as conn:
        first = members.history(conn, s.program_id, "m1", cursor=None, limit=2)
        assert first.next_cursor is not None
        rest = members.history(conn, s.program_id, "m1", cursor=first.next_cursor, limit=2)
    assert (len(first.entries), len(rest.entries), rest.next_cursor) == (2, 1, None)
    ids = [e.transaction_id for e in first.entries + rest.entries]
    assert ids == sorted(ids, reverse=True)


def test_a_page_of_nothing_is_refused_naming_the_limit(db):
    s = set_up(db, now=T0)
    with db.read() as conn, pytest.raises(Invalid) as refused:
        members.history(conn, s.program_id, "m1", cursor=None, limit=0)
    assert refused.value.field == "limit"
