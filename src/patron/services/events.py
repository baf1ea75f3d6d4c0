"""Ingesting events: judge each by the program version in force when it occurred, post the decision once."""

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from patron.domain.calendar import period_key
from patron.domain.engine import (
    AnyEvent,
    CompiledProgram,
    Decision,
    EventRejected,
    MemberState,
    OrderRecord,
    Usage,
    decide,
)
from patron.domain.events import Purchase, Refund, rule_trigger
from patron.domain.ledger import Lot, LotStatus
from patron.domain.progress import EMPTY as EMPTY_PROGRESS
from patron.services import announcements, outbox, referrals
from patron.services import members as member_service
from patron.services import progress as progress_store
from patron.services.bulk_ingest import ingest_many
from patron.services.errors import Invalid, ServiceError
from patron.services.hashing import request_fingerprint
from patron.services.idempotency import recall_event
from patron.services.journal_text import journal_memo, journal_reference
from patron.services.program_cache import ProgramCache
from patron.services.views import Balance, EventReceipt, RuleResult
from patron.store import ledger
from patron.store.database import Database
from patron.store.members import MemberRow
from patron.store.tables import events, orders, rule_usage
from patron.store.upsert import insert_or_add


def fingerprint(event: AnyEvent) -> str:
    return request_fingerprint(event.model_dump(mode="json"))


def ingest(db: Database, cache: ProgramCache, program_id: int, event: AnyEvent, *, now: datetime) -> EventReceipt:
    """Applies the event once. A retry with the same id and body gets the first receipt; another body, 409."""
    return ingest_reporting_replay(db, cache, program_id, event, now=now)[0]


def ingest_reporting_replay(
    db: Database, cache: ProgramCache, program_id: int, event: AnyEvent, *, now: datetime
) -> tuple[EventReceipt, bool]:
    """As `ingest`, and whether the receipt is a replay of an earlier delivery (the API answers 200, not 201)."""
    digest = fingerprint(event)
    return _once(
        db, program_id, event.event_id, digest, lambda conn: _apply(conn, cache, program_id, event, digest, now=now)
    )


def dry_run(db: Database, cache: ProgramCache, program_id: int, event: AnyEvent) -> EventReceipt:
    """What the event would earn now, without writing anything."""
    with db.read() as conn:
        member = member_service.require(conn, program_id, event.member_id)
        program = cache.in_force(conn, program_id, event.occurred_at)
        decision = _decide(conn, program_id, program, member, event)
        return _receipt(event, decision, None, member_service.balance(conn, member.id), dry_run=True)


def ingest_batch(
    db: Database, cache: ProgramCache, program_id: int, batch: Sequence[AnyEvent], *, now: datetime
) -> list[EventReceipt | ServiceError]:
    """Each event on its own, in one transaction where possible: a bad event fails alone, not its neighbours.

    The batch is decided in memory and written with a fixed number of statements in one transaction
    (services.bulk_ingest); if another writer wins a race for one of its event ids, the batch falls back to one
    transaction per event, which answers that event as a replay.
    """
    return [
        r if isinstance(r, ServiceError) else r[0]
        for r in ingest_batch_reporting_replays(db, cache, program_id, batch, now=now)
    ]


def ingest_batch_reporting_replays(
    db: Database, cache: ProgramCache, program_id: int, batch: Sequence[AnyEvent], *, now: datetime
) -> list[tuple[EventReceipt, bool] | ServiceError]:
    """As `ingest_batch`, with each receipt saying whether it replays an earlier delivery."""
    try:
        return db.run(lambda conn: ingest_many(conn, cache, program_id, batch, now=now))
    except IntegrityError:
        results: list[tuple[EventReceipt, bool] | ServiceError] = []
        for event in batch:
            try:
                results.append(ingest_reporting_replay(db, cache, program_id, event, now=now))
            except ServiceError as exc:
                results.append(exc)
        return results


def _once(
    db: Database, program_id: int, event_id: str, digest: str, work: Callable[[Connection], tuple[EventReceipt, bool]]
) -> tuple[EventReceipt, bool]:
    def attempt(conn: Connection) -> tuple[EventReceipt, bool]:
        stored = recall_event(conn, program_id, event_id, digest)
        return (EventReceipt.model_validate(stored), True) if stored is not None else work(conn)

    try:
        return db.run(attempt)
    except IntegrityError:
        with db.read() as conn:
            stored = recall_event(conn, program_id, event_id, digest)
        if stored is not None:
            # Another request with this event id committed between our look-up and our insert: answer as it did.
            return EventReceipt.model_validate(stored), True
        # Another event won the race for a row this one inserts too (two members reporting one order id at once).
        # Judged again, with the winner's row now in sight, it gets the rules' answer rather than a 500.
        return db.run(attempt)


def _apply(
    conn: Connection, cache: ProgramCache, program_id: int, event: AnyEvent, digest: str, *, now: datetime
) -> tuple[EventReceipt, bool]:
    member = member_service.require(conn, program_id, event.member_id, lock=True)
    # A concurrent delivery of this same event held the member lock until it committed: look again now that the
    # lock is ours, or the event would be judged a second time (a purchase refused as an order already reported).
    stored = recall_event(conn, program_id, event.event_id, digest)
    if stored is not None:
        return EventReceipt.model_validate(stored), True
    program = cache.in_force(conn, program_id, event.occurred_at)
    decision = _decide(conn, program_id, program, member, event)
    # The event row goes in first: a concurrent duplicate blocks on its unique key here, before any posting.
    event_row = conn.execute(
        insert(events).returning(events.c.id),
        {
            "program_id": program_id,
            "event_id": event.event_id,
            "member_id": member.id,
            "type": event.type,
            "occurred_at": event.occurred_at,
            "request_hash": digest,
            "response": {},
            "created_at": now,
        },
    ).scalar_one()
    transaction_id = None
    if decision.postings:
        mine, theirs = ledger.member_postings(member.id, decision.postings)
        transaction_id = ledger.post(
            conn,
            program_id=program_id,
            member_id=member.id,
            kind=event.type,
            occurred_at=event.occurred_at,
            posted_at=now,
            memo=journal_memo(event, decision),
            member_postings=mine,
            program_postings=theirs,
            event_row_id=event_row,
            program_version=decision.program_version,
            reference=journal_reference(event),
        )
        ledger.add_lots(
            conn,
            program_id=program_id,
            member_id=member.id,
            transaction_id=transaction_id,
            new=decision.new_lots,
            earned_at=event.occurred_at,
        )
        ledger.debit_lots(conn, decision.lot_debits)
    _record_usage(conn, member.id, decision)
    _record_order(conn, program_id, member.id, event, decision)
    referrals.after_events(conn, cache, program_id, [(member.id, event)], now=now)
    progress_store.record(
        conn,
        program_id,
        [progress_store.Effects(member.id, event_row, event.occurred_at, decision)],
        {member.id: decision.progress} if decision.progress is not None else {},
        progress_store.budget_limits([program], [event.occurred_at]),
        now=now,
    )
    outbox.emit(conn, announcements.event_ingested(program_id, member.id, event, decision, transaction_id), now=now)
    receipt = _receipt(event, decision, transaction_id, member_service.balance(conn, member.id))
    conn.execute(update(events).where(events.c.id == event_row).values(response=receipt.model_dump(mode="json")))
    return receipt, False


def _decide(
    conn: Connection, program_id: int, program: CompiledProgram, member: MemberRow, event: AnyEvent
) -> Decision:
    try:
        return decide(program, _member_state(conn, program_id, program, member, event), event)
    except EventRejected as exc:
        raise Invalid(exc.message, field=exc.field) from exc


def _member_state(
    conn: Connection, program_id: int, program: CompiledProgram, member: MemberRow, event: AnyEvent
) -> MemberState:

    keys = [
        (rule.rule.id, period_key(cap.period, event.occurred_at, program.zone))
        for rule in program.rules_by_trigger.get(rule_trigger(event), ())
        for cap in rule.rule.caps
    ]
    usage: dict[tuple[str, str], Usage] = {}
    if keys:
        rows = conn.execute(
            select(rule_usage.c.rule_id, rule_usage.c.period_key, rule_usage.c.times, rule_usage.c.points).where(
                rule_usage.c.member_id == member.id, rule_usage.c.rule_id.in_({k[0] for k in keys})
            )
        ).all()
        usage = {(r.rule_id, r.period_key): Usage(r.times, r.points) for r in rows if (r.rule_id, r.period_key) in keys}
    order = None
    lots: tuple[Lot, ...] = ()
    if isinstance(event, (Purchase, Refund)):
        row = conn.execute(
            select(orders).where(orders.c.program_id == program_id, orders.c.order_id == event.order_id)
        ).first()
        if row is not None:
            if row.member_id != member.id:
                raise Invalid(f"order {event.order_id!r} belongs to another member", field="order_id")
            order = OrderRecord(row.order_id, row.total, row.earned, row.refunded, row.clawed_back)
        if isinstance(event, Refund):
            lots = tuple(ledger.open_lots(conn, member.id, statuses=(LotStatus.PENDING, LotStatus.AVAILABLE)))
    _, _, debt = ledger.balance_of(conn, member.id)
    progress = progress_store.load_one(conn, member.id) if program.tracks_progress else EMPTY_PROGRESS
    budgets = progress_store.lock_budgets(
        conn, program_id, progress_store.budget_limits([program], [event.occurred_at])
    )
    return MemberState(member.external_id, member.attributes, usage, -debt, order, lots, progress, budgets)


def _record_usage(conn: Connection, member_id: int, decision: Decision) -> None:
    insert_or_add(
        conn,
        rule_usage,
        [
            {
                "member_id": member_id,
                "rule_id": u.rule_id,
                "period_key": u.period_key,
                "times": u.times,
                "points": u.points,
            }
            for u in decision.usage
        ],
        keys=["member_id", "rule_id", "period_key"],
        add=["times", "points"],
    )


def _record_order(conn: Connection, program_id: int, member_id: int, event: AnyEvent, decision: Decision) -> None:
    change = decision.order
    if change is None:
        return
    if isinstance(event, Purchase):
        conn.execute(
            insert(orders),
            {
                "program_id": program_id,
                "order_id": change.order_id,
                "member_id": member_id,
                "total": change.total,
                "earned": change.earned,
                "refunded": 0,
                "clawed_back": 0,
                "occurred_at": event.occurred_at,
            },
        )
    else:
        conn.execute(
            update(orders)
            .where(orders.c.program_id == program_id, orders.c.order_id == change.order_id)
            .values(refunded=orders.c.refunded + change.refunded, clawed_back=orders.c.clawed_back + change.clawed_back)
        )


def _receipt(
    event: AnyEvent, decision: Decision, transaction_id: int | None, balance: Balance, *, dry_run: bool = False
) -> EventReceipt:
    return EventReceipt(
        event_id=event.event_id,
        member_id=event.member_id,
        type=event.type,
        program_version=decision.program_version,
        points=decision.points,
        pending_points=decision.pending_points,
        transaction_id=transaction_id,
        rules=[
            RuleResult(rule_id=o.rule_id, fired=o.fired, points=o.points, reason=o.reason) for o in decision.outcomes
        ],
        notes=list(decision.notes),
        balance=balance,
        dry_run=dry_run,
    )
