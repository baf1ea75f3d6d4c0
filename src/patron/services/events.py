"""Ingesting events: judge each by the program version in force when it occurred, post the decision once."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, exists, insert, select, update
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
from patron.domain.progress import Progress
from patron.services import announcements, collector, outbox, referrals
from patron.services import members as member_service
from patron.services import progress as progress_store
from patron.services.bulk_ingest import BatchState, ingest_loaded, ingest_many
from patron.services.errors import IdempotencyConflict, Invalid, ServiceError
from patron.services.hashing import request_fingerprint
from patron.services.idempotency import recall_event
from patron.services.journal_text import journal_memo, journal_reference
from patron.services.program_cache import LATEST_VERSION, ProgramCache
from patron.services.views import Balance, EventReceipt, GrantedReward, RuleResult
from patron.store import ledger
from patron.store.database import Database
from patron.store.members import MemberRow
from patron.store.tables import balances, campaign_budgets, events, member_progress, orders, rule_usage
from patron.store.tables import referrals as referral_rows
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
        known = _Known.read(conn, program_id, member.id, event)
        program = cache.in_force_given(conn, program_id, event.occurred_at, latest=known.latest_version)
        decision = _decide(conn, program_id, program, member, event, known)
        return _receipt(event, decision, None, known.balance, dry_run=True)


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
        with collector.fewer_collections():
            return db.run(lambda conn: _ingest_in_order(conn, cache, program_id, batch, now=now))
    except IntegrityError:
        results: list[tuple[EventReceipt, bool] | ServiceError] = []
        for event in batch:
            try:
                results.append(ingest_reporting_replay(db, cache, program_id, event, now=now))
            except ServiceError as exc:
                results.append(exc)
        return results


def _ingest_in_order(
    conn: Connection, cache: ProgramCache, program_id: int, batch: Sequence[AnyEvent], *, now: datetime
) -> list[tuple[EventReceipt, bool] | ServiceError]:
    """The batch in one transaction, with every outcome what the events sent one by one in order would get.

    A referred member's purchase or refund may reward or claw back a referral: points for the referee and the
    referrer, which the events after it must see (in their balances, on their receipts) and which the batch writes
    work out only after deciding the whole batch. So the batch is cut at each such event: the events before it go
    in as a batch, it goes in as a single event, and the rest starts afresh from what is now written. Batches
    without one (nearly all) pay nothing for finding out: loading the batch reads whether each member was referred.
    """
    state = BatchState.load(conn, cache, program_id, batch)
    cuts = state.referred & {e.member_id for e in batch if isinstance(e, (Purchase, Refund))}
    if not cuts:
        return ingest_loaded(conn, state, batch, now=now)
    outcomes: list[tuple[EventReceipt, bool] | ServiceError] = []
    run: list[AnyEvent] = []
    for event in batch:
        if event.member_id not in cuts or not isinstance(event, (Purchase, Refund)):
            run.append(event)
            continue
        if run:
            outcomes += ingest_many(conn, cache, program_id, run, now=now)
            run = []
        try:
            # Nothing is written before a ServiceError (a missing member, an idempotency conflict, a refused
            # event), so the transaction goes on for the others.
            outcomes.append(_apply(conn, cache, program_id, event, fingerprint(event), now=now))
        except ServiceError as exc:
            outcomes.append(exc)
    if run:
        outcomes += ingest_many(conn, cache, program_id, run, now=now)
    return outcomes


def _once(
    db: Database, program_id: int, event_id: str, digest: str, work: Callable[[Connection], tuple[EventReceipt, bool]]
) -> tuple[EventReceipt, bool]:
    try:
        return db.run(work)
    except IntegrityError:
        with db.read() as conn:
            stored = recall_event(conn, program_id, event_id, digest)
        if stored is not None:
            # The same event id for another member (so another member lock) committed first: its event row's
            # unique key stopped ours before any posting. Answer as it did (or 409 if the bodies differ).
            return EventReceipt.model_validate(stored), True
        # Another event won the race for a row this one inserts too (two members reporting one order id at once).
        # Judged again, with the winner's row now in sight, it gets the rules' answer rather than a 500.
        return db.run(work)


@dataclass(frozen=True, slots=True)
class _Known:
    """What judging an event needs from the database beyond the member row, read in one statement."""

    latest_version: int | None  # the program's highest version (ProgramCache.in_force_given)
    stored_hash: str | None  # an event row already stored under this event id: its request hash and reply
    stored_response: dict[str, Any] | None
    balance: Balance
    debt: int
    order: Any  # the orders row the event's order id names (None when unknown, or for events without one)
    progress: Any  # the member's stored progress (JSON), None when they have none yet
    referred: bool  # whether the member was ever referred: only then can a referral react to the event

    @staticmethod
    def read(conn: Connection, program_id: int, member_id: int, event: AnyEvent) -> "_Known":
        order_id = event.order_id if isinstance(event, (Purchase, Refund)) else None
        row = conn.execute(
            _KNOWN,
            {"program_id": program_id, "member": member_id, "event_id": event.event_id, "order_id": order_id},
        ).one()
        return _Known(
            None if row.latest_version is None else int(row.latest_version),
            row.request_hash,
            row.response,
            Balance(available=int(row.available), pending=int(row.pending), owed=-int(row.debt)),
            int(row.debt),
            row if row.order_member_id is not None else None,
            row.progress,
            bool(row.referred),
        )

    def replay(self, event_id: str, digest: str) -> EventReceipt | None:
        """The receipt stored for this event id, if it was already ingested; 409 if with another body."""
        if self.stored_hash is None:
            return None
        if self.stored_hash != digest:
            raise IdempotencyConflict(
                f"event {event_id!r} was already received with a different body", field="event_id"
            )
        return EventReceipt.model_validate(self.stored_response)


# One statement, built once: the program's latest version, the stored event (a retry), the balance, the order,
# the progress and whether a referral exists, where each used to cost a round trip of its own.
_KNOWN = (
    select(
        LATEST_VERSION.label("latest_version"),
        events.c.request_hash,
        events.c.response,
        balances.c.available,
        balances.c.pending,
        balances.c.debt,
        orders.c.order_id,
        orders.c.member_id.label("order_member_id"),
        orders.c.total,
        orders.c.earned,
        orders.c.refunded,
        orders.c.clawed_back,
        select(member_progress.c.state)
        .where(member_progress.c.member_id == bindparam("member"))
        .scalar_subquery()
        .label("progress"),
        exists().where(referral_rows.c.referee_id == bindparam("member")).label("referred"),
    )
    .select_from(
        balances.outerjoin(
            events, and_(events.c.program_id == bindparam("program_id"), events.c.event_id == bindparam("event_id"))
        ).outerjoin(
            orders, and_(orders.c.program_id == bindparam("program_id"), orders.c.order_id == bindparam("order_id"))
        )
    )
    .where(balances.c.member_id == bindparam("member"))
)
_INSERT_EVENT = insert(events).returning(events.c.id)
_STORE_RECEIPT = update(events).where(events.c.id == bindparam("event_row")).values(response=bindparam("receipt"))
_INSERT_ORDER = insert(orders)


def _apply(
    conn: Connection, cache: ProgramCache, program_id: int, event: AnyEvent, digest: str, *, now: datetime
) -> tuple[EventReceipt, bool]:
    member = member_service.require(conn, program_id, event.member_id, lock=True)
    # Read under the member lock: a concurrent delivery of this same event held the lock until it committed, and
    # the event must not be judged a second time (a purchase refused as an order already reported).
    known = _Known.read(conn, program_id, member.id, event)
    replayed = known.replay(event.event_id, digest)
    if replayed is not None:
        return replayed, True
    program = cache.in_force_given(conn, program_id, event.occurred_at, latest=known.latest_version)
    state = _member_state(conn, program_id, program, member, event, known)
    decision = _judge(program, state, event)
    limits = progress_store.budget_limits([program], [event.occurred_at])
    if _draws_on_budgets(decision, limits):
        # Budgets were read without a lock, which would make every purchase of the program wait for every other
        # while a budgeted campaign runs. Only a decision that draws on a budget locks it, and is taken again if
        # another transaction spent from it meanwhile. Budgets only shrink, so a decision that drew on none
        # would draw on none with the fresh figures either.
        left = progress_store.lock_budgets(conn, program_id, limits)
        if left != state.campaign_budgets:
            decision = _judge(program, replace(state, campaign_budgets=left), event)
    # The event row goes in first: a concurrent duplicate for another member (another lock) blocks on its unique
    # key here, before any posting.
    event_row = conn.execute(
        _INSERT_EVENT,
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
    balance = known.balance
    if decision.postings:
        mine, theirs = ledger.member_postings(member.id, decision.postings)
        transaction_id, moved = ledger.post_reading_balance(
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
        if moved is not None:
            balance = Balance(available=moved[0], pending=moved[1], owed=-moved[2])
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
    if known.referred:
        referrals.after_events(conn, cache, program_id, [(member.id, event)], now=now)
        # A referral reward may have gone to this member too: the receipt shows the balance after it.
        balance = member_service.balance(conn, member.id)
    codes = progress_store.draw_codes(decision)
    progress_store.record(
        conn,
        program_id,
        [progress_store.Effects(member.id, event_row, event.occurred_at, decision, codes)],
        {member.id: decision.progress} if decision.progress is not None else {},
        limits,
        now=now,
    )
    outbox.emit(conn, announcements.event_ingested(program_id, member.id, event, decision, transaction_id), now=now)
    receipt = _receipt(event, decision, transaction_id, balance, codes=codes)
    conn.execute(_STORE_RECEIPT, {"event_row": event_row, "receipt": receipt.model_dump(mode="json")})
    return receipt, False


def _decide(
    conn: Connection,
    program_id: int,
    program: CompiledProgram,
    member: MemberRow,
    event: AnyEvent,
    known: _Known | None = None,
) -> Decision:
    return _judge(program, _member_state(conn, program_id, program, member, event, known), event)


def _judge(program: CompiledProgram, state: MemberState, event: AnyEvent) -> Decision:
    try:
        return decide(program, state, event)
    except EventRejected as exc:
        raise Invalid(exc.message, field=exc.field) from exc


def _draws_on_budgets(decision: Decision, limits: dict[str, int]) -> bool:
    """Whether a budgeted campaign spends from its budget or fires (one giving a reward alone spends no points)."""
    if not limits:
        return False
    fired = {o.rule_id for o in decision.outcomes if o.fired}
    return bool(decision.campaign_spend) or any(f"campaign:{c}" in fired for c in limits)


def _member_state(
    conn: Connection,
    program_id: int,
    program: CompiledProgram,
    member: MemberRow,
    event: AnyEvent,
    known: _Known | None = None,
) -> MemberState:
    """`known`: what `_Known.read` found for this member and event in this transaction (read here if not given)."""
    if known is None:
        known = _Known.read(conn, program_id, member.id, event)
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
        row = known.order
        if row is not None:
            if row.order_member_id != member.id:
                raise Invalid(f"order {event.order_id!r} belongs to another member", field="order_id")
            order = OrderRecord(row.order_id, row.total, row.earned, row.refunded, row.clawed_back)
        if isinstance(event, Refund):
            lots = tuple(ledger.open_lots(conn, member.id, statuses=(LotStatus.PENDING, LotStatus.AVAILABLE)))
    progress = Progress.from_json(known.progress) if program.tracks_progress else EMPTY_PROGRESS
    budgets = _budgets_left(conn, program_id, progress_store.budget_limits([program], [event.occurred_at]))
    return MemberState(member.external_id, member.attributes, usage, -known.debt, order, lots, progress, budgets)


def _budgets_left(conn: Connection, program_id: int, limits: dict[str, int]) -> dict[str, int]:
    """As progress.lock_budgets, without locking: the caller locks only if its decision draws on a budget."""
    if not limits:
        return {}
    rows = conn.execute(_SPENT, {"program_id": program_id, "campaigns": sorted(limits)})
    spent = {r.campaign_id: r.spent for r in rows}
    return {c: max(limit - spent.get(c, 0), 0) for c, limit in limits.items()}


_SPENT = select(campaign_budgets.c.campaign_id, campaign_budgets.c.spent).where(
    campaign_budgets.c.program_id == bindparam("program_id"),
    campaign_budgets.c.campaign_id.in_(bindparam("campaigns", expanding=True)),
)


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
            _INSERT_ORDER,
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
    event: AnyEvent,
    decision: Decision,
    transaction_id: int | None,
    balance: Balance,
    *,
    codes: Sequence[str] | None = None,
    dry_run: bool = False,
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
        grants=[
            GrantedReward(
                reward_id=g.reward_id, reward_kind=g.reward_kind, source=g.source, reason=g.reason, coupon_code=code
            )
            for g, code in zip(decision.grants, _codes_or_none(codes, len(decision.grants)), strict=True)
        ],
        dry_run=dry_run,
    )


def _codes_or_none(codes: Sequence[str] | None, grants: int) -> Sequence[str | None]:
    return [None] * grants if codes is None else codes
