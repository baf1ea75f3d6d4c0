"""The CDNOW history (23,570 members, 69,659 purchases) imported into a fresh database through
`services.imports`, the path of `patron import` and `patron demo`: members first, then every purchase as an event,
with as many processes as the import takes by default (2 on PostgreSQL, 1 on SQLite)."""

import time
from datetime import UTC, datetime

from bench.databases import fresh_database
from bench.report import Figure
from bench.workload import DEMO_PROGRAM_FILE
from patron.demo import cdnow
from patron.services import imports, programs

EFFECTIVE_FROM = datetime(1997, 1, 1, tzinfo=cdnow.ZONE)


def run(backend: str, *, sample: bool = False) -> list[Figure]:
    purchases = cdnow.read(cdnow.locate(sample=sample))
    member_rows, order_rows = cdnow.member_rows(purchases), cdnow.order_rows(purchases)
    with fresh_database(backend, "cdnow") as db:
        now = datetime.now(UTC)
        program_id = programs.create_program(db, "demo", now=now)
        document = programs.read_document(DEMO_PROGRAM_FILE)
        programs.publish(db, program_id, document, actor="bench", now=now, effective_from=EFFECTIVE_FROM)
        start = time.perf_counter()
        members = imports.import_members(db, program_id, member_rows, now=now)
        members_done = time.perf_counter()
        orders = imports.import_orders(db, program_id, order_rows, now=now)
        seconds = time.perf_counter() - start
    assert members.accepted == len(member_rows), members
    assert orders.accepted == len(order_rows), orders
    return [
        Figure(
            f"CDNOW import{' (sample)' if sample else ''}",
            backend,
            seconds,
            "s",
            target=None if sample else 15.0,
            lower_is_better=True,
            note=f"{len(member_rows):,} members in {members_done - start:.1f} s, {len(order_rows):,} orders in "
            f"{seconds - (members_done - start):.1f} s ({len(order_rows) / (seconds - (members_done - start)):,.0f}/s"
            f"{', ' + str(orders.processes) + ' processes' if orders.processes > 1 else ''})",
        )
    ]
