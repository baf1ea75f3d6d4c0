"""LEDGER.md scenario 1: a random life of earns, redemptions, refunds, adjustments, activation and expiry.

A hypothesis state machine drives the real services on SQLite and on PostgreSQL (a fresh database per example)
and keeps a reference model of its own: every member's lots, balances and debt, the program's accounts, cap usage,
orders and gift stock. After every step the database must equal the model, and invariants 1-6 must hold: balanced
transactions, an append-only journal, cached balances equal to their postings, floors, lots within their bounds and
adding up to the balances, and first-to-expire-first spending. Invariant 7, an event id processed at most once, is
what the rules that resend an event (the same body: the first receipt, nothing posted) and reuse its id (another
body: refused, nothing posted) check.
"""

import functools
import hashlib
import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from patron.domain.events import Custom, Purchase, Refund, Signup
from patron.domain.members import MemberProfile
from patron.services import adjustments, events, maintenance, members, programs, redemptions
from patron.services.errors import Conflict, IdempotencyConflict, InsufficientPointsError, Invalid, OutOfStock
from patron.services.program_cache import ProgramCache
from patron.store.tables import events as events_table
from patron.store.tables import journal, postings
from tests.conftest import T0, make_database
from tests.helpers import LONG_AGO, check_invariants, ledger_dump, member_lots, program_accounts, program_document

ZONE = ZoneInfo("America/New_York")
EXPIRY_DAYS = 30
MEMBERS = ("m1", "m2")
REWARDS = {"small": 50, "big": 120, "gift": 30}
GIFT_STOCK = 2


def document(pending_days: int, shortfall: str):
    return program_document(
        timezone="America/New_York",
        earning={"points_per_unit": "1", "rounding": "half_up"},
        pending_days=pending_days,
        expiry={"policy": "after", "days": EXPIRY_DAYS},
        refunds={"shortfall": shortfall},
        rules=[
            {"id": "base", "event": "purchase"},
            {"id": "big", "event": "purchase", "when": "event.total_minor >= 10000", "points": {"fixed": 50}},
            {
                "id": "welcome",
                "event": "signup",
                "points": {"fixed": 100},
                "caps": [{"period": "lifetime", "max_times": 1}],
            },
            {"id": "review", "event": "review", "points": {"fixed": 20}, "caps": [{"period": "week", "max_times": 3}]},
        ],
        rewards=[
            {"id": "small", "name": "Small", "cost": REWARDS["small"], "kind": "coupon", "value": "1.00"},
            {"id": "big", "name": "Big", "cost": REWARDS["big"], "kind": "free_product", "sku": "B"},
            {
                "id": "gift",
                "name": "Gift",
                "cost": REWARDS["gift"],
                "kind": "gift",
                "stock": GIFT_STOCK,
                "per_member_limit": 1,
            },
        ],
    )


# --- the reference model ------------------------------------------------------------------------------------


@dataclass
class ModelLot:
    seq: int
    member: str
    points: int
    remaining: int
    status: str
    earned_at: object
    available_at: object
    expires_at: object
    order_id: str | None

    def spend_key(self):
        return (self.expires_at, self.earned_at, self.seq)


@dataclass
class ModelOrder:
    member: str
    total: Decimal
    earned: int
    refunded: Decimal = Decimal(0)
    clawed_back: int = 0


@dataclass
class Model:
    pending_days: int
    shortfall: str
    lots: list[ModelLot] = field(default_factory=list)
    owed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MEMBERS, 0))
    accounts: dict[str, int] = field(default_factory=dict)
    usage: dict[tuple[str, str, object], int] = field(default_factory=dict)
    orders: dict[str, ModelOrder] = field(default_factory=dict)
    gifts_given: int = 0
    gifts_by_member: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MEMBERS, 0))
    seq: itertools.count = field(default_factory=itertools.count)

    def account(self, name: str, amount: int) -> None:
        self.accounts[name] = self.accounts.get(name, 0) + amount
        if self.accounts[name] == 0:
            del self.accounts[name]

    def balance(self, member: str) -> tuple[int, int, int]:
        mine = [lot for lot in self.lots if lot.member == member]
        available = sum(lot.remaining for lot in mine if lot.status == "available")
        pending = sum(lot.remaining for lot in mine if lot.status == "pending")
        return available, pending, self.owed[member]

    def due_to_expire(self, member: str, now) -> list[ModelLot]:
        return [
            lot
            for lot in self.lots
            if lot.member == member and lot.status == "available" and lot.remaining and lot.expires_at <= now
        ]

    def live_available(self, member: str, now) -> int:
        """What a spend may take: lots past their expiry are not spendable, whether or not the job has run."""
        return self.balance(member)[0] - sum(lot.remaining for lot in self.due_to_expire(member, now))

    def expire_lots(self, due: list[ModelLot]) -> None:
        self.account("expired", sum(lot.remaining for lot in due))
        for lot in due:
            lot.remaining, lot.status = 0, "expired"

    def spendable(self, member: str) -> list[ModelLot]:
        found = [lot for lot in self.lots if lot.member == member and lot.status == "available" and lot.remaining]
        return sorted(found, key=ModelLot.spend_key)

    @staticmethod
    def take(lots: list[ModelLot], points: int) -> int:
        """Takes up to `points` from the lots in order; returns what could not be taken."""
        for lot in lots:
            taken = min(lot.remaining, points)
            lot.remaining -= taken
            points -= taken
        return points

    def earn(self, member: str, at, order_id: str | None, pending: int, immediate: int, source="issued") -> None:
        self.account(source, -(pending + immediate))
        expires = at + timedelta(days=EXPIRY_DAYS)
        if pending:
            available_at = at + timedelta(days=self.pending_days)
            self.add_lot(member, pending, "pending", at, available_at, expires, order_id)
        settled = min(self.owed[member], immediate)
        self.owed[member] -= settled
        if immediate - settled:
            self.add_lot(member, immediate - settled, "available", at, at, expires, order_id)

    def add_lot(self, member, points, status, earned_at, available_at, expires_at, order_id) -> None:
        lot = ModelLot(next(self.seq), member, points, points, status, earned_at, available_at, expires_at, order_id)
        self.lots.append(lot)

    def settle(self, member: str) -> None:
        available = self.balance(member)[0]
        settle = min(self.owed[member], available)
        if settle:
            assert self.take(self.spendable(member), settle) == 0
            self.owed[member] -= settle


def half_up(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def week_of(moment) -> tuple[int, int]:
    year, week, _ = moment.astimezone(ZONE).isocalendar()
    return year, week


# --- the machine --------------------------------------------------------------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    """Subclassed per backend with `fresh_database` set."""

    fresh_database = None

    def __init__(self) -> None:
        super().__init__()
        self.db = type(self).fresh_database()
        self.cache = ProgramCache()
        self.now = T0
        self.ids = itertools.count(1)
        self.delivered: list[tuple[object, object]] = []  # (event, first receipt)
        self.seen_rows: dict[str, dict[int, str]] = {"journal": {}, "postings": {}, "events": {}}
        self.model: Model | None = None
        self.program_id = 0

    def teardown(self) -> None:
        self.db.dispose()

    @initialize(pending_days=st.sampled_from([0, 14]), shortfall=st.sampled_from(["negative_balance", "write_off"]))
    def publish(self, pending_days, shortfall):
        self.program_id = programs.create_program(self.db, "props", now=self.now)
        programs.publish(
            self.db,
            self.program_id,
            document(pending_days, shortfall),
            actor="test",
            now=self.now,
            effective_from=LONG_AGO,
        )
        for member in MEMBERS:
            members.upsert(self.db, self.program_id, member, MemberProfile(), now=self.now)
        self.model = Model(pending_days, shortfall)

    def next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self.ids)}"

    def deliver(self, event):
        receipt = events.ingest(self.db, self.cache, self.program_id, event, now=self.now)
        self.delivered.append((event, receipt))
        assert receipt.balance.model_dump() == dict(
            zip(("available", "pending", "owed"), self.model.balance(event.member_id), strict=True)
        )
        return receipt

    def ingesting(self, event):
        return functools.partial(events.ingest, self.db, self.cache, self.program_id, event, now=self.now)

    def refused(self, call, error, field=None):
        """The call fails with exactly `error` (naming `field`), and writes nothing."""
        before = ledger_dump(self.db)
        with pytest.raises(error) as caught:
            call()
        assert type(caught.value) is error
        if field is not None:
            assert caught.value.field == field
        assert ledger_dump(self.db) == before

    # --- events ---

    @rule(member=st.sampled_from(MEMBERS), cents=st.one_of(st.just(0), st.integers(1, 30_000)))
    def purchase(self, member, cents):
        total = Decimal(cents) / 100
        order_id = self.next_id("o")
        event = Purchase(
            event_id=self.next_id("e"), member_id=member, occurred_at=self.now, order_id=order_id, total=total
        )
        points = half_up(total) + (50 if cents >= 10_000 else 0)
        if self.model.pending_days:
            self.model.earn(member, self.now, order_id, points, 0)
        else:
            self.model.earn(member, self.now, order_id, 0, points)
        self.model.orders[order_id] = ModelOrder(member, total, points)
        receipt = self.deliver(event)
        assert receipt.points == points
        assert receipt.pending_points == (points if self.model.pending_days else 0)
        assert (receipt.transaction_id is None) == (points == 0)

    @precondition(lambda self: self.model is not None and self.model.orders)
    @rule(data=st.data(), member=st.sampled_from(MEMBERS))
    def purchase_reusing_an_order_id(self, data, member):
        order_id = data.draw(st.sampled_from(sorted(self.model.orders)))
        event = Purchase(
            event_id=self.next_id("e"), member_id=member, occurred_at=self.now, order_id=order_id, total="5.00"
        )
        self.refused(self.ingesting(event), Invalid, "order_id")

    @rule(member=st.sampled_from(MEMBERS))
    def signup(self, member):
        key = (member, "welcome", "lifetime")
        points = 100 if self.model.usage.get(key, 0) < 1 else 0
        if points:
            self.model.usage[key] = 1
            self.model.earn(member, self.now, None, 0, points)
        receipt = self.deliver(Signup(event_id=self.next_id("e"), member_id=member, occurred_at=self.now))
        assert receipt.points == points

    @rule(member=st.sampled_from(MEMBERS))
    def review(self, member):
        key = (member, "review", week_of(self.now))
        points = 20 if self.model.usage.get(key, 0) < 3 else 0
        if points:
            self.model.usage[key] = self.model.usage.get(key, 0) + 1
            self.model.earn(member, self.now, None, 0, points)
        event = Custom(event_id=self.next_id("e"), member_id=member, occurred_at=self.now, name="review")
        assert self.deliver(event).points == points

    @precondition(lambda self: self.model is not None and self.model.orders)
    @rule(data=st.data(), how=st.sampled_from(["partial", "partial", "full", "over"]), by_owner=st.booleans())
    def refund(self, data, how, by_owner):
        order_id = data.draw(st.sampled_from(sorted(self.model.orders)))
        order = self.model.orders[order_id]
        member = order.member if by_owner else next(m for m in MEMBERS if m != order.member)
        left = order.total - order.refunded
        if how == "partial" and left > Decimal("0.01"):
            amount = Decimal(data.draw(st.integers(1, int(left * 100) - 1))) / 100
        elif how in ("partial", "full") and left > 0:
            amount = left
        else:
            amount = left + Decimal(data.draw(st.integers(1, 5000))) / 100
        event = Refund(
            event_id=self.next_id("e"), member_id=member, occurred_at=self.now, order_id=order_id, amount=amount
        )
        if member != order.member:
            self.refused(self.ingesting(event), Invalid, "order_id")
            return
        if amount > left:
            self.refused(self.ingesting(event), Invalid, "amount")
            return
        refunded_after = order.refunded + amount
        target = int(Fraction(order.earned) * Fraction(refunded_after) / Fraction(order.total))
        clawback = max(min(target, order.earned) - order.clawed_back, 0)
        order.refunded, order.clawed_back = refunded_after, order.clawed_back + clawback
        self.claw_back(member, order_id, clawback)
        receipt = self.deliver(event)
        assert receipt.points == -clawback
        assert order.clawed_back <= order.earned

    def claw_back(self, member: str, order_id: str, points: int) -> None:
        model = self.model
        model.account("issued", points)
        own_pending = [
            lot
            for lot in model.lots
            if lot.member == member and lot.order_id == order_id and lot.status == "pending" and lot.remaining
        ]
        spendable = model.spendable(member)
        own = [lot for lot in spendable if lot.order_id == order_id]
        others = [lot for lot in spendable if lot.order_id != order_id]
        missing = model.take(own_pending + own + others, points)
        if missing and model.shortfall == "negative_balance":
            model.owed[member] += missing
        elif missing:
            model.account("write_off", -missing)

    @precondition(lambda self: self.model is not None)
    @rule()
    def refund_of_an_unknown_order(self):
        event = Refund(
            event_id=self.next_id("e"), member_id="m1", occurred_at=self.now, order_id="no-such-order", amount="1"
        )
        self.refused(self.ingesting(event), Invalid, "order_id")

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def retry_the_same_event(self, data):
        event, first = data.draw(st.sampled_from(self.delivered))
        before = ledger_dump(self.db)
        again = events.ingest(self.db, self.cache, self.program_id, event, now=self.now)
        assert again == first
        assert ledger_dump(self.db) == before

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def reuse_an_event_id_with_another_body(self, data):
        event, _ = data.draw(st.sampled_from(self.delivered))
        other_member = next(m for m in MEMBERS if m != event.member_id)
        changed = event.model_copy(
            update=data.draw(
                st.sampled_from(
                    [{"occurred_at": event.occurred_at + timedelta(seconds=1)}, {"member_id": other_member}]
                    + ([{"total": event.total + 1}] if isinstance(event, Purchase) else [])
                )
            )
        )
        self.refused(self.ingesting(changed), IdempotencyConflict, "event_id")

    # --- spending ---

    @precondition(lambda self: self.model is not None)
    @rule(member=st.sampled_from(MEMBERS), reward=st.sampled_from(sorted(REWARDS)))
    def redeem(self, member, reward):
        model, cost = self.model, REWARDS[reward]
        call = functools.partial(redemptions.redeem, self.db, self.cache, self.program_id, member, reward, now=self.now)
        if reward == "gift" and model.gifts_by_member[member] >= 1:
            self.refused(call, Conflict, "reward_id")
            return
        if model.live_available(member, self.now) < cost:
            self.refused(call, InsufficientPointsError, "reward_id")
            return
        if reward == "gift" and model.gifts_given >= GIFT_STOCK:
            self.refused(call, OutOfStock, "reward_id")
            return
        before = member_lots(self.db, self.program_id, member)
        model.expire_lots(model.due_to_expire(member, self.now))
        assert model.take(model.spendable(member), cost) == 0
        model.account("redeemed", cost)
        if reward == "gift":
            model.gifts_given += 1
            model.gifts_by_member[member] += 1
        view, replay = call()
        assert not replay
        assert view.cost == cost
        assert (view.coupon_code is None) == (reward == "gift")
        self.check_first_to_expire_first(before, member_lots(self.db, self.program_id, member))

    @precondition(lambda self: self.model is not None)
    @rule(member=st.sampled_from(MEMBERS), points=st.integers(-150, 150).filter(bool))
    def adjust(self, member, points):
        model = self.model
        call = functools.partial(
            adjustments.adjust, self.db, self.cache, self.program_id, member, points, "test", actor="prop", now=self.now
        )
        if points < 0 and model.live_available(member, self.now) < -points:
            self.refused(call, InsufficientPointsError, "points")
            return
        before = member_lots(self.db, self.program_id, member)
        if points > 0:
            model.earn(member, self.now, None, 0, points, source="adjustments")
        else:
            model.expire_lots(model.due_to_expire(member, self.now))
            model.account("adjustments", -points)
            assert model.take(model.spendable(member), -points) == 0
        view, _ = call()
        assert view.points == points
        if points < 0:
            self.check_first_to_expire_first(before, member_lots(self.db, self.program_id, member))

    # --- the jobs, as time goes by ---

    @precondition(lambda self: self.model is not None)
    @rule(hours=st.sampled_from([0, 1, 24, 24 * 7, 24 * 14, 24 * 20]))
    def activate(self, hours):
        self.now += timedelta(hours=hours)
        due = [
            lot for lot in self.model.lots if lot.status == "pending" and lot.remaining and lot.available_at <= self.now
        ]
        points = sum(lot.remaining for lot in due)
        for lot in due:
            lot.status = "available"
        for member in sorted({lot.member for lot in due}):
            self.model.settle(member)
        report = maintenance.activate(self.db, now=self.now)
        assert (report.lots, report.points) == (len(due), points)
        again = maintenance.activate(self.db, now=self.now)
        assert (again.lots, again.points) == (0, 0)

    @precondition(lambda self: self.model is not None)
    @rule(hours=st.sampled_from([0, 1, 24, 24 * 10, 24 * 31]))
    def expire(self, hours):
        self.now += timedelta(hours=hours)
        due = [
            lot for lot in self.model.lots if lot.status == "available" and lot.remaining and lot.expires_at <= self.now
        ]
        points = sum(lot.remaining for lot in due)
        for lot in due:
            lot.remaining, lot.status = 0, "expired"
        self.model.account("expired", points)
        before = program_accounts(self.db, self.program_id).get("expired", 0)
        report = maintenance.expire(self.db, now=self.now)
        assert (report.lots, report.points) == (len(due), points)
        assert program_accounts(self.db, self.program_id).get("expired", 0) - before == points
        again = maintenance.expire(self.db, now=self.now)
        assert (again.lots, again.points) == (0, 0)

    # --- checks after every step ---

    def check_first_to_expire_first(self, before, after) -> None:
        """Invariant 6: no lot that comes earlier in the spending order kept points while a later one was spent."""
        remaining_before = {lot.id: lot.remaining for lot in before}
        debited = [lot for lot in after if lot.remaining < remaining_before.get(lot.id, lot.remaining)]
        assert debited, "a spend took points from no lot"

        def key(lot):
            return (lot.expires_at is None, lot.expires_at or lot.earned_at, lot.earned_at, lot.id)

        latest = max(key(lot) for lot in debited)
        skipped = [lot.id for lot in after if lot.status == "available" and lot.remaining > 0 and key(lot) < latest]
        assert skipped == [], f"lots {skipped} expire first but kept their points"

    @invariant()
    def database_equals_the_model(self):
        if self.model is None:
            return
        for member in MEMBERS:
            with self.db.read() as conn:
                balance = members.view(conn, self.program_id, member, now=self.now).balance
            assert (balance.available, balance.pending, balance.owed) == self.model.balance(member), member
            stored = [
                (lot.points, lot.remaining, lot.status, lot.expires_at, lot.order_id)
                for lot in member_lots(self.db, self.program_id, member)
            ]
            expected = [
                (lot.points, lot.remaining, lot.status, lot.expires_at, lot.order_id)
                for lot in self.model.lots
                if lot.member == member
            ]
            assert stored == expected, member
        assert program_accounts(self.db, self.program_id) == self.model.accounts

    @invariant()
    def ledger_invariants_hold(self):
        check_invariants(self.db)

    @invariant()
    def the_journal_is_append_only(self):
        with self.db.read() as conn:
            for table in (journal, postings, events_table):
                rows = conn.execute(sa.select(table).order_by(table.c.id)).all()
                current = {row.id: hashlib.sha256(repr(tuple(row)).encode()).hexdigest() for row in rows}
                seen = self.seen_rows[table.name]
                changed = [row_id for row_id, digest in seen.items() if current.get(row_id) != digest]
                assert changed == [], f"{table.name} rows changed or deleted: {changed}"
                seen.update(current)

    @invariant()
    def program_accounts_balance_the_members(self):
        if self.model is None:
            return
        members_total = sum(sum(self.model.balance(m)[:2]) - self.model.owed[m] for m in MEMBERS)
        assert sum(self.model.accounts.values()) + members_total == 0


@pytest.mark.slow
def test_the_ledger_matches_its_reference_model(backend, request, tmp_path):
    examples = itertools.count()

    def fresh_database():
        directory = tmp_path / f"example-{next(examples)}"
        directory.mkdir()
        return make_database(backend, request, directory)

    machine = type(
        "LedgerMachineOn" + backend.title(), (LedgerMachine,), {"fresh_database": staticmethod(fresh_database)}
    )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=30,
            stateful_step_count=30,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
