"""Points raffles: members buy entries with points until the draw; the draw picks winners verifiably.

A raffle is opened either by the program document (its `raffles` section, when a version declaring it is
published: `declare`) or ad hoc over the API and the CLI (`create`). Either way its seed is drawn once, at that
moment, and stays in the raffle's row: only its SHA-256 is shown until the draw, and no later version can change
it (or any other term members bought entries on).

Entries are spent points (available to the program's redeemed account, lots first-to-expire first). At the draw,
losers get their points back when the raffle says so, as new lots with the expiry the spent points had.
"""

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Connection, Row, func, insert, select, update

from patron.domain import raffles as draw_rules
from patron.domain.coupons import CouponKind, Offer
from patron.domain.engine import NewLot
from patron.domain.ledger import Account, InsufficientPoints, Posting, plan_spend
from patron.domain.program import RAFFLE_TERMS, Identifier, Raffle, RaffleTerms, Reward, RewardKind
from patron.services import coupons, maintenance, outbox
from patron.services import members as member_service
from patron.services.errors import Conflict, InsufficientPointsError, Invalid, NotFound
from patron.services.hashing import request_fingerprint
from patron.services.idempotency import KeyedRequest, run_keyed
from patron.services.program_cache import ProgramCache
from patron.services.views import Balance
from patron.store import ledger
from patron.store.database import Database
from patron.store.members import lock_many
from patron.store.tables import balances, members, raffle_entries, raffle_winners, raffles, reward_stock

AnyRow = Row[*tuple[Any, ...]]


class RaffleSpec(RaffleTerms):
    """What an admin says when opening a raffle ad hoc (one the program does not declare)."""

    name: Identifier


class Winner(BaseModel):
    rank: int
    member_id: str
    ticket: str
    prize_code: str | None


class RaffleView(BaseModel):
    name: str
    prize_reward_id: str
    winners: int
    entry_cost: int
    max_entries_per_member: int
    opens_at: datetime = Field(description="entries are sold from then: when the version declaring it starts")
    draws_at: datetime
    refund_losers: bool
    seed_hash: str = Field(description="SHA-256 of the secret seed, published before any entry")
    seed: str | None = Field(description="revealed at the draw")
    drawn_at: datetime | None
    tickets_sold: int
    results: list[Winner]


class EntryView(BaseModel):
    raffle: str
    member_id: str
    entry_id: int
    tickets: int
    points: int
    member_tickets: int
    transaction_id: int
    balance: Balance


class DrawAudit(BaseModel):
    """Everything needed to check a draw by hand, and whether the stored results match a recomputation."""

    raffle: str
    seed: str
    seed_hash: str
    seed_matches_hash: bool
    tickets: list[str]
    recomputed: list[Winner]
    stored: list[Winner]
    verified: bool


def create(
    db: Database, cache: ProgramCache, program_id: int, spec: RaffleSpec, *, actor: str, now: datetime
) -> RaffleView:
    if spec.draws_at <= now:
        raise Invalid("draws_at must be in the future", field="draws_at")

    def work(conn: Connection) -> RaffleView:
        program = cache.in_force(conn, program_id, now)
        if program.document.reward(spec.prize_reward_id) is None:
            raise Invalid(f"no reward {spec.prize_reward_id!r} in the program's catalog", field="prize_reward_id")
        if _find(conn, program_id, spec.name) is not None:
            raise Conflict(f"a raffle named {spec.name!r} exists", field="name")
        _open(conn, program_id, spec.name, spec.model_dump(exclude={"name"}), actor=actor, now=now, opens_at=now)
        return view(conn, program_id, spec.name)

    return db.run(work)


def declare(
    conn: Connection, program_id: int, declared: Sequence[Raffle], *, actor: str, now: datetime, starts: datetime
) -> list[str]:
    """Opens the declared raffles that do not exist yet, in the publishing transaction, to entries from when the
    version starts (`starts`, or now if it already has). One that exists (declared by an earlier version, or made
    over the API) must keep every term: members bought entries on them. Returns what was opened."""
    opens_at = max(starts, now)
    opened = []
    for index, raffle in enumerate(declared):
        path = f"raffles.{index}"
        existing = _find(conn, program_id, raffle.id)
        if existing is not None:
            for term in RAFFLE_TERMS:
                was, declared_now = getattr(existing, term), getattr(raffle, term)
                if was != declared_now:
                    raise Invalid(
                        f"raffle {raffle.id!r} was opened with {term} {_shown(was)}, not {_shown(declared_now)}: "
                        "a raffle's terms cannot change once it is open (declare a new raffle)",
                        field=f"{path}.{term}",
                    )
            continue
        if raffle.draws_at <= opens_at:
            raise Invalid(
                f"raffle {raffle.id!r} would draw at {raffle.draws_at.isoformat()}, before it opens at "
                f"{opens_at.isoformat()}: draws_at must be after the version declaring the raffle starts, and in the "
                "future",
                field=f"{path}.draws_at",
            )
        terms = raffle.model_dump(include=set(RAFFLE_TERMS))
        seed_hash = _open(conn, program_id, raffle.id, terms, actor=actor, now=now, opens_at=opens_at)
        opened.append(
            f"raffle {raffle.id!r}: open from {opens_at.isoformat()}, drawn at {raffle.draws_at.isoformat()}, "
            f"seed SHA-256 {seed_hash}"
        )
    return opened


def _open(
    conn: Connection,
    program_id: int,
    name: str,
    terms: dict[str, Any],
    *,
    actor: str,
    now: datetime,
    opens_at: datetime,
) -> str:
    """Inserts the raffle with a new secret seed; returns the seed's SHA-256, the commitment to publish."""
    seed = secrets.token_hex(32)
    seed_hash = draw_rules.commitment(seed)
    conn.execute(
        insert(raffles),
        {
            "program_id": program_id,
            "name": name,
            **terms,
            "opens_at": opens_at,
            "seed": seed,
            "seed_hash": seed_hash,
            "created_by": actor,
            "created_at": now,
        },
    )
    return seed_hash


def _shown(value: object) -> str:
    """A term as the document writes it."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value).lower() if isinstance(value, bool) else str(value)


def _find(conn: Connection, program_id: int, name: str, *, lock: bool = False, share: bool = False) -> AnyRow | None:
    query = select(raffles).where(raffles.c.program_id == program_id, raffles.c.name == name)
    if lock or share:
        query = query.with_for_update(read=share and not lock)
    return conn.execute(query).first()


def _require(conn: Connection, program_id: int, name: str, *, lock: bool = False, share: bool = False) -> AnyRow:
    row = _find(conn, program_id, name, lock=lock, share=share)
    if row is None:
        raise NotFound(f"no raffle {name!r}", field="raffle")
    return row


def view(conn: Connection, program_id: int, name: str) -> RaffleView:
    row = _require(conn, program_id, name)
    sold = conn.execute(
        select(func.coalesce(func.sum(raffle_entries.c.tickets), 0)).where(raffle_entries.c.raffle_id == row.id)
    ).scalar_one()
    return RaffleView(
        name=row.name,
        prize_reward_id=row.prize_reward_id,
        winners=row.winners,
        entry_cost=row.entry_cost,
        max_entries_per_member=row.max_entries_per_member,
        opens_at=row.opens_at,
        draws_at=row.draws_at,
        refund_losers=row.refund_losers,
        seed_hash=row.seed_hash,
        seed=row.seed if row.drawn_at is not None else None,
        drawn_at=row.drawn_at,
        tickets_sold=int(sold),
        results=_stored_winners(conn, row.id),
    )


def _stored_winners(conn: Connection, raffle_id: int) -> list[Winner]:
    rows = conn.execute(
        select(raffle_winners.c.rank, members.c.external_id, raffle_winners.c.ticket, raffle_winners.c.prize_code)
        .join(members, members.c.id == raffle_winners.c.member_id)
        .where(raffle_winners.c.raffle_id == raffle_id)
        .order_by(raffle_winners.c.rank)
    ).all()
    return [Winner(rank=r.rank, member_id=r.external_id, ticket=r.ticket, prize_code=r.prize_code) for r in rows]


def enter(
    db: Database,
    program_id: int,
    name: str,
    member_external_id: str,
    tickets: int,
    *,
    now: datetime,
    idempotency_key: str | None = None,
) -> tuple[EntryView, bool]:
    """Buys `tickets` entries with the member's points. Refused (409) once the draw time has come."""
    if tickets <= 0:
        raise Invalid("buy at least one entry", field="entries")
    fingerprint = request_fingerprint({"raffle": name, "member_id": member_external_id, "entries": tickets})
    request = KeyedRequest(program_id, idempotency_key, "raffle.enter", fingerprint, EntryView)

    def work(conn: Connection) -> tuple[EntryView, bool]:
        if (replayed := request.replay(conn)) is not None:
            return replayed
        # Entries share the raffle's row lock and the draw takes it alone, so no entry commits unseen by the draw
        # (its points spent, its ticket missing). The raffle is locked before the member, as the draw does.
        raffle = _require(conn, program_id, name, share=True)
        member = member_service.require(conn, program_id, member_external_id, lock=True)
        # A concurrent request with this key held the member lock until it committed: look again now that the
        # lock is ours, or the entries would be bought twice (or the key's insert would fail).
        if (replayed := request.replay(conn)) is not None:
            return replayed
        if raffle.drawn_at is not None:
            raise Conflict(f"raffle {name!r} was drawn at {raffle.drawn_at.isoformat()}: entries are closed")
        if now >= raffle.draws_at:
            raise Conflict(f"entries to raffle {name!r} closed at {raffle.draws_at.isoformat()}")
        if now < raffle.opens_at:
            raise Conflict(f"entries to raffle {name!r} open at {raffle.opens_at.isoformat()}")
        held = conn.execute(
            select(func.coalesce(func.sum(raffle_entries.c.tickets), 0)).where(
                raffle_entries.c.raffle_id == raffle.id, raffle_entries.c.member_id == member.id
            )
        ).scalar_one()
        if held + tickets > raffle.max_entries_per_member:
            raise Conflict(
                f"at most {raffle.max_entries_per_member} entries per member; this member holds {held}",
                field="entries",
            )
        cost = tickets * raffle.entry_cost
        maintenance.expire_due_lots_of(conn, member.id, now=now)
        open_lots = ledger.open_lots(conn, member.id)
        try:
            debits = plan_spend(open_lots, cost)
        except InsufficientPoints as exc:
            raise InsufficientPointsError(
                f"{tickets} entries cost {exc.needed} points; {exc.available} are available", field="entries"
            ) from exc
        expiry = {lot.id: None if lot.expires_at is None else lot.expires_at.isoformat() for lot in open_lots}
        transaction_id = ledger.post(
            conn,
            program_id=program_id,
            member_id=member.id,
            kind="raffle",
            occurred_at=now,
            posted_at=now,
            memo=f"{tickets} entries to raffle {name} for {cost} points",
            member_postings=[ledger.MemberPosting(member.id, Account.AVAILABLE, -cost)],
            program_postings=[Posting(Account.REDEEMED, cost)],
            reference=f"raffle:{name}",
        )
        ledger.debit_lots(conn, debits)
        entry_id = conn.execute(
            insert(raffle_entries).returning(raffle_entries.c.id),
            {
                "raffle_id": raffle.id,
                "member_id": member.id,
                "tickets": tickets,
                "points": cost,
                "transaction_id": transaction_id,
                "lots": [[d.lot_id, d.points, expiry[d.lot_id]] for d in debits],
                "created_at": now,
            },
        ).scalar_one()
        result = EntryView(
            raffle=name,
            member_id=member.external_id,
            entry_id=entry_id,
            tickets=tickets,
            points=cost,
            member_tickets=held + tickets,
            transaction_id=transaction_id,
            balance=member_service.balance(conn, member.id),
        )
        return request.remember(conn, result, now)

    return run_keyed(db, work, request.replay)


def _tickets(conn: Connection, raffle_id: int) -> tuple[list[draw_rules.Ticket], list[AnyRow]]:
    entries = conn.execute(
        select(
            raffle_entries.c.id,
            raffle_entries.c.member_id,
            raffle_entries.c.tickets,
            raffle_entries.c.points,
            raffle_entries.c.lots,
            members.c.external_id,
        )
        .join(members, members.c.id == raffle_entries.c.member_id)
        .where(raffle_entries.c.raffle_id == raffle_id)
        .order_by(raffle_entries.c.id)
    ).all()
    return draw_rules.tickets_of([(e.id, e.external_id, e.tickets) for e in entries]), list(entries)


def draw(db: Database, cache: ProgramCache, program_id: int, name: str, *, now: datetime) -> RaffleView:
    """Reveals the seed, records the winners with their prizes, and refunds losers if the raffle says so."""

    def work(conn: Connection) -> RaffleView:
        raffle = _require(conn, program_id, name, lock=True)
        if raffle.drawn_at is not None:
            raise Conflict(f"raffle {name!r} was already drawn at {raffle.drawn_at.isoformat()}")
        if now < raffle.draws_at:
            raise Conflict(f"raffle {name!r} draws at {raffle.draws_at.isoformat()}, not before")
        tickets, entries = _tickets(conn, raffle.id)
        winning = draw_rules.draw(raffle.seed, tickets, raffle.winners)
        member_ids = {e.external_id: e.member_id for e in entries}
        # Members are locked in id order before their points move: concurrent writers never deadlock with us.
        lock_many(conn, sorted(set(member_ids.values())))
        reward = cache.in_force(conn, program_id, now).document.reward(raffle.prize_reward_id)
        if reward is None:
            raise Conflict(f"the prize {raffle.prize_reward_id!r} is no longer in the catalog", field="prize_reward_id")
        if reward.kind is RewardKind.GIFT and winning:
            assert reward.stock is not None
            taken = conn.execute(
                update(reward_stock)
                .where(
                    reward_stock.c.program_id == program_id,
                    reward_stock.c.reward_id == reward.id,
                    reward_stock.c.given + len(winning) <= reward.stock,
                )
                .values(given=reward_stock.c.given + len(winning))
            )
            if taken.rowcount != 1:
                raise Conflict(f"{reward.name!r} has fewer than {len(winning)} left in stock", field="prize_reward_id")
        if winning:
            prize_batch = _prize_batch(conn, program_id, raffle.name, reward, now=now)
            conn.execute(
                insert(raffle_winners),
                [
                    {
                        "raffle_id": raffle.id,
                        "rank": rank,
                        "member_id": member_ids[ticket.member_id],
                        "ticket": ticket.label,
                        "prize_code": None
                        if prize_batch is None
                        else coupons.issue_code(conn, program_id, prize_batch, member_ids[ticket.member_id], now=now),
                    }
                    for rank, ticket in enumerate(winning, start=1)
                ],
            )
        if raffle.refund_losers:
            winners = {ticket.member_id for ticket in winning}
            _refund(conn, program_id, raffle, [e for e in entries if e.external_id not in winners], now=now)
        conn.execute(update(raffles).where(raffles.c.id == raffle.id).values(drawn_at=now))
        drawn = view(conn, program_id, name)
        announcement = outbox.Emitted(
            program_id,
            outbox.EventType.RAFFLE_DRAWN,
            None,
            {
                "raffle": name,
                "seed": raffle.seed,
                "seed_hash": raffle.seed_hash,
                "winners": [w.model_dump(include={"rank", "member_id", "ticket"}) for w in drawn.results],
            },
            now,
        )
        outbox.emit(conn, [announcement], now=now)
        return drawn

    return db.run(work)


def _prize_batch(conn: Connection, program_id: int, raffle_name: str, reward: Reward, *, now: datetime) -> str | None:
    """Coupon and free-product prizes are codes of a batch of the raffle's own, so a checkout can validate and
    redeem them like any coupon (each for its winner only). Gifts have no code."""
    if reward.kind is RewardKind.COUPON:
        offer = Offer(kind=CouponKind.AMOUNT_OFF, amount=reward.value)
    elif reward.kind is RewardKind.FREE_PRODUCT:
        offer = Offer(kind=CouponKind.FREE_PRODUCT, sku=reward.sku)
    else:
        return None
    name = f"raffle.{raffle_name}"[:64]
    coupons.ensure_batch(conn, program_id, name, offer, actor=f"raffle:{raffle_name}", now=now)
    return name


def _refund(conn: Connection, program_id: int, raffle: AnyRow, losing: list[AnyRow], *, now: datetime) -> None:
    """One transaction giving every loser their entries' points back, as lots with the expiry they had."""
    if not losing:
        return
    refunds: dict[int, int] = {}
    for entry in losing:
        refunds[entry.member_id] = refunds.get(entry.member_id, 0) + entry.points
    owed = dict(
        conn.execute(select(balances.c.member_id, balances.c.debt).where(balances.c.member_id.in_(list(refunds)))).all()
    )
    moves: list[ledger.MemberPosting] = []
    settle: dict[int, int] = {}
    for member_id, points in refunds.items():
        # Points owed from an earlier refund are settled before anything becomes available again.
        settle[member_id] = min(points, -int(owed.get(member_id, 0)))
        moves.append(ledger.MemberPosting(member_id, Account.DEBT, settle[member_id]))
        moves.append(ledger.MemberPosting(member_id, Account.AVAILABLE, points - settle[member_id]))
    transaction_id = ledger.post(
        conn,
        program_id=program_id,
        member_id=None,
        kind="raffle",
        occurred_at=now,
        posted_at=now,
        memo=f"raffle {raffle.name}: points of {len(refunds)} non-winners refunded",
        member_postings=moves,
        program_postings=[Posting(Account.REDEEMED, -sum(refunds.values()))],
        reference=f"raffle:{raffle.name}",
    )
    for member_id in refunds:
        to_settle = settle[member_id]
        new: list[NewLot] = []
        for entry in (e for e in losing if e.member_id == member_id):
            for _, points, expires in entry.lots:
                kept = points - min(points, to_settle)
                to_settle -= points - kept
                if kept:
                    expires_at = None if expires is None else datetime.fromisoformat(expires)
                    new.append(NewLot(kept, False, now, expires_at, None))
        ledger.add_lots(
            conn, program_id=program_id, member_id=member_id, transaction_id=transaction_id, new=new, earned_at=now
        )


def audit(conn: Connection, program_id: int, name: str) -> DrawAudit:
    """Recomputes the draw from the revealed seed and the stored entries; `verified` says if all agree."""
    raffle = _require(conn, program_id, name)
    if raffle.drawn_at is None:
        raise Conflict(f"raffle {name!r} has not been drawn yet: the seed is still secret")
    tickets, _ = _tickets(conn, raffle.id)
    stored = _stored_winners(conn, raffle.id)
    codes = {w.rank: w.prize_code for w in stored}
    recomputed = [
        Winner(rank=rank, member_id=t.member_id, ticket=t.label, prize_code=codes.get(rank))
        for rank, t in enumerate(draw_rules.draw(raffle.seed, tickets, raffle.winners), start=1)
    ]
    matches_hash = draw_rules.commitment(raffle.seed) == raffle.seed_hash
    return DrawAudit(
        raffle=name,
        seed=raffle.seed,
        seed_hash=raffle.seed_hash,
        seed_matches_hash=matches_hash,
        tickets=[t.label for t in tickets],
        recomputed=recomputed,
        stored=stored,
        verified=matches_hash and recomputed == stored,
    )
