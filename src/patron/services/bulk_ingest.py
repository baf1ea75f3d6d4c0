"""Many events in one transaction with a fixed number of statements, whatever the batch size.

Member state for the whole batch is read in a handful of queries, each event is decided in memory by the same
`decide` that single events use (state carried forward with `advance`, so the tenth purchase of a member in a
batch sees the nine before it), and everything is written with set-based statements. Each event still succeeds
or fails on its own: a rejected event leaves no trace and does not change the state its neighbours see.
"""

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import Connection, Select, bindparam, exists, select, update

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
from patron.domain.ledger import Account, Lot, LotDebit, LotStatus
from patron.domain.progress import Progress
from patron.domain.replay import advance, advance_order
from patron.services import announcements, outbox, referrals
from patron.services import progress as progress_store
from patron.services.errors import IdempotencyConflict, Invalid, NotFound, ServiceError
from patron.services.hashing import request_fingerprint
from patron.services.journal_text import journal_memo, journal_reference
from patron.services.program_cache import LATEST_VERSION, ProgramCache
from patron.services.views import EventReceipt, EventReceiptData, receipts_of
from patron.store import ledger
from patron.store.bulk import Together, allocate_ids_of, insert_rows, rows_by_key
from patron.store.database import plan_each_statement
from patron.store.sets import ids_placeholder, set_value, texts_placeholder
from patron.store.tables import balances, events, journal, lots, member_progress, members, orders, rule_usage
from patron.store.tables import referrals as referral_rows
from patron.store.upsert import insert_or_add

Outcome = tuple[EventReceipt, bool] | ServiceError  # the receipt, and whether it replays an earlier delivery
SMALL_BATCH = 64  # a batch smaller than this has its statements planned for it (store.database.plan_each_statement)


@dataclass
class _Member:
    id: int
    state: MemberState
    available: int
    pending: int
    debt: int


@dataclass
class _Accepted:
    """An event that will be written, with what it needs once the rows have ids."""

    index: int
    event: AnyEvent
    digest: str
    member: _Member
    decision: Decision
    receipt: EventReceiptData  # plain data until the batch is written: stored as it is, validated once after
    coupon_codes: list[str]  # one per grant of the decision, named by the receipt
    new_lot_ids: list[int] = field(default_factory=list)


def ingest_many(
    conn: Connection, cache: ProgramCache, program_id: int, batch: Sequence[AnyEvent], *, now: datetime
) -> list[Outcome]:
    """Runs inside the caller's transaction. A unique-key race with another writer raises IntegrityError for
    the whole batch: the caller retries the events one by one."""
    return ingest_loaded(conn, BatchState.load(conn, cache, program_id, batch), batch, now=now)


def ingest_loaded(
    conn: Connection, batch_state: "BatchState", batch: Sequence[AnyEvent], *, now: datetime
) -> list[Outcome]:
    """Decides and writes the batch `BatchState.load` loaded, in the same transaction."""
    program_id = batch_state.program_id
    outcomes: list[Outcome | None] = [None] * len(batch)
    accepted: list[_Accepted] = []
    first_seen: dict[str, tuple[str, int]] = {}
    repeats: list[tuple[int, int]] = []
    for index, event in enumerate(batch):
        digest = request_fingerprint(event.model_dump(mode="json"))
        earlier = first_seen.get(event.event_id)
        if earlier is not None:  # the same id twice in one batch: a retry of the first, or a conflict
            first_digest, first_index = earlier
            if first_digest == digest:
                repeats.append((index, first_index))
                continue
            if not isinstance(outcomes[first_index], ServiceError):
                outcomes[index] = _conflict(event.event_id)
                continue
            # A first delivery that failed left nothing behind: this body is judged on its own, as if sent after it.
        first_seen[event.event_id] = (digest, index)
        try:
            batch_state.member_of(event)  # as a single event: an unknown member is 404 before any replay
            stored = batch_state.replay_of(event, digest)
            if stored is None:
                accepted.append(batch_state.decide(index, event, digest))
            else:
                outcomes[index] = (stored, True)
        except ServiceError as exc:
            outcomes[index] = exc
    if accepted:
        _write(conn, program_id, accepted, batch_state, now)
        for a, receipt in zip(accepted, receipts_of([a.receipt for a in accepted]), strict=True):
            outcomes[a.index] = (receipt, False)
    for index, first in repeats:
        earlier_outcome = outcomes[first]
        outcomes[index] = (earlier_outcome[0], True) if isinstance(earlier_outcome, tuple) else earlier_outcome
    result = [o for o in outcomes if o is not None]
    assert len(result) == len(batch), "every event has an outcome"
    return result


# The batch's reads are built once (per dialect): building a statement cost more than running it for a batch of a
# few events, as group commit makes them.
@cache
def _members_query(dialect: str) -> Select[Any]:
    return (
        select(members.c.id, members.c.external_id, members.c.attributes)
        .where(
            members.c.program_id == bindparam("program_id"),
            texts_placeholder(dialect, members.c.external_id, "external_ids"),
        )
        .order_by(members.c.id)
        # Nothing but the locked rows is read here: after waiting for a lock, PostgreSQL gives the new version of
        # the rows a statement locks and the old one of every other row it reads, from before the wait.
        .with_for_update()
    )


@cache
def _member_extras_query(dialect: str) -> Select[Any]:
    """Balances, progress, and whether they were ever referred, of the members bound to `member_ids`, and the
    program's latest version: read after their lock, in a statement of its own, so that what the transaction that
    held it wrote is seen (all of it changes only under the member's lock), and a version published meanwhile.
    """
    columns: list[Any] = [
        members.c.id,
        balances.c.available,
        balances.c.pending,
        balances.c.debt,
        member_progress.c.state,
        exists().where(referral_rows.c.referee_id == members.c.id).label("referred"),
        LATEST_VERSION.label("latest_version"),
    ]
    return (
        select(*columns)
        .join(balances, balances.c.member_id == members.c.id)
        .outerjoin(member_progress, member_progress.c.member_id == members.c.id)
        .where(ids_placeholder(dialect, members.c.id, "member_ids"))
    )


@cache
def _usage_query(dialect: str) -> Select[Any]:
    return select(rule_usage).where(
        ids_placeholder(dialect, rule_usage.c.member_id, "member_ids"),
        texts_placeholder(dialect, rule_usage.c.rule_id, "rule_ids"),
        texts_placeholder(dialect, rule_usage.c.period_key, "period_keys"),
    )


@cache
def _open_lots_query(dialect: str) -> Select[Any]:
    return (
        select(lots)
        .where(
            ids_placeholder(dialect, lots.c.member_id, "member_ids"),
            lots.c.remaining > 0,
            lots.c.status.in_([LotStatus.PENDING.value, LotStatus.AVAILABLE.value]),
        )
        .order_by(lots.c.id)
    )


def _conflict(event_id: str) -> IdempotencyConflict:
    return IdempotencyConflict(f"event {event_id!r} was already received with a different body", field="event_id")


class BatchState:
    """Everything the batch's decisions read, loaded up front and carried forward in memory."""

    def __init__(self, cache: ProgramCache, conn: Connection, program_id: int) -> None:
        self.cache, self.conn, self.program_id = cache, conn, program_id
        self.stored: dict[str, tuple[str, dict[str, Any]]] = {}
        self.members: dict[str, _Member] = {}
        self.orders: dict[str, tuple[int, OrderRecord, bool]] = {}  # order id -> (member, record, is new)
        self.order_deltas: dict[str, tuple[Decimal, int]] = defaultdict(lambda: (Decimal(0), 0))
        self.order_times: dict[str, datetime] = {}
        self.versions: list[tuple[datetime, int]] = []
        self.version_starts: list[datetime] = []
        self.compiled: dict[int, CompiledProgram] = {}  # by version: asked for three times per event
        self.next_lot_id = -1  # lots born in this batch get negative ids until they are written
        self.budget_limits: dict[str, int] = {}
        self.budgets: dict[str, int] = {}  # points left per budgeted campaign, carried through the batch
        self.referred: set[str] = set()  # the members of the batch who were ever referred (external ids)

    @classmethod
    def load(cls, conn: Connection, cache: ProgramCache, program_id: int, batch: Sequence[AnyEvent]) -> "BatchState":
        """Locks the batch's members and reads what deciding its events needs: `ingest_loaded` then writes it."""
        self = cls(cache, conn, program_id)
        # Every member of the batch is locked, in id order, like every other change to points.
        external_ids = sorted({e.member_id for e in batch})
        found = conn.execute(
            _members_query(conn.dialect.name),
            {"program_id": program_id, "external_ids": set_value(conn, external_ids)},
        ).all()
        extras: dict[int, Any] = {}
        if found:  # otherwise no event has a member, and none is decided
            query = _member_extras_query(conn.dialect.name)
            bound = {"program_id": program_id, "member_ids": set_value(conn, [r.id for r in found])}
            extras = {e.id: e for e in conn.execute(query, bound)}
            latest = next(iter(extras.values())).latest_version
            self.versions = list(cache.timeline(conn, program_id, latest=latest))
            self.version_starts = [v[0] for v in self.versions]
        if len(batch) < SMALL_BATCH:
            # What follows takes the batch's keys as one parameter: planned for a few keys, not for a thousand.
            plan_each_statement(conn)
        by_id = {}
        progress: dict[int, Any] = {}
        for r in found:
            e = extras[r.id]
            member = _Member(
                r.id, MemberState(r.external_id, r.attributes, {}, -e.debt), e.available, e.pending, e.debt
            )
            self.members[r.external_id] = member
            by_id[r.id] = member
            if e.referred:
                self.referred.add(r.external_id)
            if e.state is not None:
                progress[r.id] = e.state
        # Only now, under the member locks: a concurrent delivery of one of these events held a lock until it
        # committed, and must be found here as a replay rather than judged again (its order already reported).
        event_ids = sorted({e.event_id for e in batch})
        for row in rows_by_key(
            conn,
            [events.c.event_id, events.c.request_hash, events.c.response],
            scope=events.c.program_id,
            scope_id=program_id,
            key=events.c.event_id,
            values=event_ids,
        ):
            self.stored[row.event_id] = (row.request_hash, row.response)
        self._load_orders(batch)
        self._load_usage(batch, by_id)
        self._load_lots(batch, by_id)
        self._load_progress(batch, progress, by_id)
        return self

    def _load_progress(self, batch: Sequence[AnyEvent], stored: dict[int, Any], by_id: dict[int, _Member]) -> None:
        programs = {p.version: p for e in batch if (p := self._program_at(e.occurred_at)) is not None}.values()
        if any(p.tracks_progress for p in programs):
            for member_id, state in stored.items():
                by_id[member_id].state = replace(by_id[member_id].state, progress=Progress.from_json(state))
        self.budget_limits = progress_store.budget_limits(programs, [e.occurred_at for e in batch])
        self.budgets = progress_store.lock_budgets(self.conn, self.program_id, self.budget_limits)

    def _load_orders(self, batch: Sequence[AnyEvent]) -> None:
        order_ids = sorted({e.order_id for e in batch if isinstance(e, (Purchase, Refund))})
        if not order_ids:
            return
        for r in rows_by_key(
            self.conn,
            list(orders.c),
            scope=orders.c.program_id,
            scope_id=self.program_id,
            key=orders.c.order_id,
            values=order_ids,
        ):
            self.orders[r.order_id] = (
                r.member_id,
                OrderRecord(r.order_id, r.total, r.earned, r.refunded, r.clawed_back),
                False,
            )

    def _load_usage(self, batch: Sequence[AnyEvent], by_id: dict[int, _Member]) -> None:
        wanted: set[tuple[str, str]] = set()
        for event in batch:
            program = self._program_at(event.occurred_at)
            if program is None:
                continue
            for rule in program.rules_by_trigger.get(rule_trigger(event), ()):
                for cap in rule.rule.caps:
                    wanted.add((rule.rule.id, period_key(cap.period, event.occurred_at, program.zone)))
        if not wanted or not by_id:
            return
        conn = self.conn
        rows = conn.execute(
            _usage_query(conn.dialect.name),
            {
                "member_ids": set_value(conn, list(by_id)),
                "rule_ids": set_value(conn, sorted({w[0] for w in wanted})),
                "period_keys": set_value(conn, sorted({w[1] for w in wanted})),
            },
        ).all()
        usage: dict[int, dict[tuple[str, str], Usage]] = defaultdict(dict)
        for r in rows:
            usage[r.member_id][(r.rule_id, r.period_key)] = Usage(r.times, r.points)
        for member_id, found in usage.items():
            member = by_id[member_id]
            member.state = replace(member.state, usage=found)

    def _load_lots(self, batch: Sequence[AnyEvent], by_id: dict[int, _Member]) -> None:
        refunding = [m.id for e in batch if isinstance(e, Refund) and (m := self.members.get(e.member_id))]
        if not refunding:
            return
        found: dict[int, list[Lot]] = defaultdict(list)
        for r in self.conn.execute(
            _open_lots_query(self.conn.dialect.name), {"member_ids": set_value(self.conn, refunding)}
        ):
            found[r.member_id].append(
                Lot(
                    r.id,
                    r.points,
                    r.remaining,
                    LotStatus(r.status),
                    r.earned_at,
                    r.expires_at,
                    r.order_id,
                    r.available_at,
                )
            )
        for member_id, member_lots in found.items():
            by_id[member_id].state = replace(by_id[member_id].state, lots=tuple(member_lots))

    def _program_at(self, at: datetime) -> CompiledProgram | None:
        position = bisect_right(self.version_starts, at)
        if position == 0:
            return None
        version = self.versions[position - 1][1]
        found = self.compiled.get(version)
        if found is None:
            found = self.compiled[version] = self.cache.version(self.conn, self.program_id, version)
        return found

    def replay_of(self, event: AnyEvent, digest: str) -> EventReceipt | None:
        stored = self.stored.get(event.event_id)
        if stored is None:
            return None
        if stored[0] != digest:
            raise _conflict(event.event_id)
        return EventReceipt.model_validate(stored[1])

    def member_of(self, event: AnyEvent) -> _Member:
        member = self.members.get(event.member_id)
        if member is None:
            raise NotFound(f"no member {event.member_id!r} in this program", field="member_id")
        return member

    def decide(self, index: int, event: AnyEvent, digest: str) -> _Accepted:
        member = self.member_of(event)
        program = self._program_at(event.occurred_at)
        if program is None:
            raise Invalid(f"no program version was in force at {event.occurred_at.isoformat()}", field="occurred_at")
        state = member.state
        changes: dict[str, Any] = {}  # one replace for both: rebuilding the state is a cost per event
        if isinstance(event, (Purchase, Refund)):
            known = self.orders.get(event.order_id)
            if known is not None and known[0] != member.id:
                raise Invalid(f"order {event.order_id!r} belongs to another member", field="order_id")
            order = known[1] if known else None
            if state.order is not order:
                changes["order"] = order
        if self.budgets:
            changes["campaign_budgets"] = dict(self.budgets)
        if changes:
            state = replace(state, **changes)
        try:
            decision = decide(program, state, event)
        except EventRejected as exc:
            raise Invalid(exc.message, field=exc.field) from exc
        new_lot_ids: list[int] = []

        def new_lot_id() -> int:
            self.next_lot_id -= 1
            new_lot_ids.append(self.next_lot_id)
            return self.next_lot_id

        member.state = advance(state, event, decision, new_lot_id)
        for campaign_id, points in decision.campaign_spend:
            if campaign_id in self.budgets:
                self.budgets[campaign_id] -= points
        for posting in decision.postings:
            if posting.account is Account.AVAILABLE:
                member.available += posting.amount
            elif posting.account is Account.PENDING:
                member.pending += posting.amount
            elif posting.account is Account.DEBT:
                member.debt += posting.amount
        if decision.order is not None:
            change = decision.order
            known = self.orders.get(change.order_id)
            self.orders[change.order_id] = (
                member.id,
                advance_order(known[1] if known else None, change),
                known[2] if known else True,
            )
            if known is None:
                self.order_times[change.order_id] = event.occurred_at
            elif not known[2]:
                refunded, clawed = self.order_deltas[change.order_id]
                self.order_deltas[change.order_id] = (refunded + change.refunded, clawed + change.clawed_back)
        codes = progress_store.draw_codes(decision)
        receipt: EventReceiptData = {
            "event_id": event.event_id,
            "member_id": event.member_id,
            "type": event.type,
            "program_version": decision.program_version,
            "points": decision.points,
            "pending_points": decision.pending_points,
            "transaction_id": None,  # known once the batch's journal ids are drawn
            "rules": [
                {"rule_id": o.rule_id, "fired": o.fired, "points": o.points, "reason": o.reason}
                for o in decision.outcomes
            ],
            "notes": list(decision.notes),
            "balance": {"available": member.available, "pending": member.pending, "owed": -member.debt},
            "grants": [
                {
                    "reward_id": g.reward_id,
                    "reward_kind": g.reward_kind,
                    "source": g.source,
                    "reason": g.reason,
                    "coupon_code": code,
                }
                for g, code in zip(decision.grants, codes, strict=True)
            ],
            "dry_run": False,
        }
        return _Accepted(index, event, digest, member, decision, receipt, codes, new_lot_ids)


def _write(conn: Connection, program_id: int, accepted: list[_Accepted], state: BatchState, now: datetime) -> None:
    # Ids first: each event row then goes in once, complete with its receipt (which names its transaction).
    with_postings = sum(1 for a in accepted if a.decision.postings)
    event_rows, transaction_ids = allocate_ids_of(conn, [(events, len(accepted)), (journal, with_postings)])
    posting = [(a, row) for a, row in zip(accepted, event_rows, strict=True) if a.decision.postings]
    transaction_of = {a.index: t for (a, _), t in zip(posting, transaction_ids, strict=True)}
    for a in accepted:
        a.receipt["transaction_id"] = transaction_of.get(a.index)
    # The inserts of a small batch go to PostgreSQL as one statement; written before anything reads them.
    together = Together(conn)
    # Rows with a unique key go in in key order, and so do another process's: two batches that both hold some of
    # the same event ids (or order ids) then wait for each other in one order, never in a deadlock.
    insert_rows(
        conn,
        events,
        sorted(
            (
                {
                    "id": row,
                    "program_id": program_id,
                    "event_id": a.event.event_id,
                    "member_id": a.member.id,
                    "type": a.event.type,
                    "occurred_at": a.event.occurred_at,
                    "request_hash": a.digest,
                    "response": a.receipt,
                    "created_at": now,
                }
                for a, row in zip(accepted, event_rows, strict=True)
            ),
            key=lambda row: row["event_id"],
        ),
        together=together,
    )
    if posting:
        insert_rows(
            conn,
            journal,
            [
                {
                    "id": transaction_of[a.index],
                    "program_id": program_id,
                    "member_id": a.member.id,
                    "kind": a.event.type,
                    "event_id": row,
                    "program_version": a.decision.program_version,
                    "reference": journal_reference(a.event),
                    "memo": journal_memo(a.event, a.decision),
                    "occurred_at": a.event.occurred_at,
                    "posted_at": now,
                }
                for a, row in posting
            ],
            together=together,
        )
        _write_postings(conn, program_id, [(transaction_of[a.index], a) for a, _ in posting], together)
        _write_lots(conn, program_id, [(transaction_of[a.index], a) for a, _ in posting], together)
    _write_usage(conn, accepted)
    _write_orders(conn, program_id, state, together)
    # Only a referred member's purchase or refund can change a referral, and the member lock kept anyone from
    # being referred since the batch was loaded.
    referred = [(a.member.id, a.event) for a in accepted if a.member.state.member_id in state.referred]
    if referred:
        together.flush()  # referrals read the orders
        referrals.after_events(conn, state.cache, program_id, referred, now=now)
    progress_store.record(
        conn,
        program_id,
        [
            progress_store.Effects(a.member.id, row, a.event.occurred_at, a.decision, a.coupon_codes)
            for a, row in zip(accepted, event_rows, strict=True)
        ],
        {a.member.id: a.member.state.progress for a in accepted if a.decision.progress is not None},
        state.budget_limits,
        now=now,
        together=together,
    )
    outbox.emit(
        conn,
        [
            e
            for a in accepted
            for e in announcements.event_ingested(
                program_id, a.member.id, a.event, a.decision, transaction_of.get(a.index)
            )
        ],
        now=now,
        together=together,
    )
    together.flush()


def _write_postings(conn: Connection, program_id: int, posted: list[tuple[int, _Accepted]], together: Together) -> None:
    rows = []
    moves = []
    for transaction_id, a in posted:
        for p in a.decision.postings:
            member_id = a.member.id if p.account.is_member_account else None
            rows.append([transaction_id, member_id, p.account.value, p.amount])
            if member_id is not None:
                moves.append(ledger.MemberPosting(member_id, p.account, p.amount))
    ledger.insert_postings(conn, program_id, rows, together=together)
    ledger.move_balances(conn, moves, together=together)


def _write_lots(conn: Connection, program_id: int, posted: list[tuple[int, _Accepted]], together: Together) -> None:
    remaining = {
        lot.id: lot.remaining
        for member in {id(a.member): a.member for _, a in posted}.values()
        for lot in member.state.lots
    }
    new_rows = []
    debits: dict[int, int] = defaultdict(int)
    for transaction_id, a in posted:
        for lot_id, new in zip(a.new_lot_ids, a.decision.new_lots, strict=True):
            new_rows.append(
                {
                    "program_id": program_id,
                    "member_id": a.member.id,
                    "transaction_id": transaction_id,
                    "order_id": new.order_id,
                    "points": new.points,
                    "remaining": remaining.get(lot_id, 0),
                    "status": (LotStatus.PENDING if new.pending else LotStatus.AVAILABLE).value,
                    "earned_at": a.event.occurred_at,
                    "available_at": new.available_at,
                    "expires_at": new.expires_at,
                }
            )
        for debit in a.decision.lot_debits:
            if debit.lot_id > 0:  # lots born in this batch were written with what is left of them
                debits[debit.lot_id] += debit.points
    insert_rows(conn, lots, new_rows, together=together)
    ledger.debit_lots(conn, [LotDebit(lot_id, points) for lot_id, points in sorted(debits.items())])


def _write_usage(conn: Connection, accepted: list[_Accepted]) -> None:
    totals: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for a in accepted:
        for inc in a.decision.usage:
            total = totals[(a.member.id, inc.rule_id, inc.period_key)]
            total[0] += inc.times
            total[1] += inc.points
    insert_or_add(
        conn,
        rule_usage,
        [
            {"member_id": m, "rule_id": r, "period_key": k, "times": t, "points": p}
            for (m, r, k), (t, p) in totals.items()
        ],
        keys=["member_id", "rule_id", "period_key"],
        add=["times", "points"],
    )


def _write_orders(conn: Connection, program_id: int, state: BatchState, together: Together) -> None:
    new = sorted(
        ((member_id, record) for member_id, record, is_new in state.orders.values() if is_new),
        key=lambda found: found[1].order_id,  # in key order: see _write
    )
    insert_rows(
        conn,
        orders,
        [
            {
                "program_id": program_id,
                "order_id": r.order_id,
                "member_id": m,
                "total": r.total,
                "earned": r.earned,
                "refunded": r.refunded,
                "clawed_back": r.clawed_back,
                "occurred_at": state.order_times[r.order_id],
            }
            for m, r in new
        ],
        together=together,
    )
    for order_id, (refunded, clawed) in state.order_deltas.items():
        conn.execute(
            update(orders)
            .where(orders.c.program_id == program_id, orders.c.order_id == order_id)
            .values(refunded=orders.c.refunded + refunded, clawed_back=orders.c.clawed_back + clawed)
        )
