"""Referrals: codes, sign-ups screened for fraud, rewards on the new member's first qualifying purchase, and
claw-back when that order is refunded. The purchase side runs inside the event's own transaction
(`after_events`, called by single and bulk ingestion)."""

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, Select, func, insert, select, text, update

from patron.domain.calendar import expires_at
from patron.domain.coupons import CODE_ALPHABET, normalize_code
from patron.domain.engine import AnyEvent, CompiledProgram, NewLot
from patron.domain.events import Purchase, Refund
from patron.domain.ledger import Account, Posting, plan_spend, spending_order
from patron.domain.program import RefundShortfall
from patron.domain.referrals import (
    WEEK,
    Outcome,
    Party,
    Recent,
    ReferralReward,
    ReferralScheme,
    Status,
    judge_purchase,
    refund_undoes,
    screen,
)
from patron.services import coupons, outbox
from patron.services import members as member_service
from patron.services.errors import Conflict, Invalid, NotFound
from patron.services.program_cache import ProgramCache
from patron.store import ledger
from patron.store.database import Database
from patron.store.members import MemberRow
from patron.store.sets import ids_placeholder, set_value
from patron.store.tables import coupons as coupon_rows
from patron.store.tables import members, orders, referral_codes, referrals

CODE_LENGTH = 8
# The first key of PostgreSQL's two-key advisory locks on referral sign-ups by IP address ("REFI"): the two-key
# space is apart from the one-key locks used elsewhere.
_IP_LOCK_SPACE = 0x5245_4649


class ReferralCodeView(BaseModel):
    member_id: str
    code: str


class ReferralView(BaseModel):
    referrer_id: str
    referee_id: str
    status: Status
    eligible: bool
    reason: str | None
    order_id: str | None
    rewards: dict[str, Any]
    created_at: datetime
    decided_at: datetime | None


def code_for(
    db: Database, program_id: int, member_external_id: str, *, fingerprints: Sequence[str] = (), now: datetime
) -> tuple[ReferralCodeView, bool]:
    """The member's referral code (made on first request) and whether it is new. Fingerprints sent are kept
    with the code, to recognise the member signing up again under another name."""

    def work(conn: Connection) -> tuple[ReferralCodeView, bool]:
        member = member_service.require(conn, program_id, member_external_id, lock=True)
        row = conn.execute(
            select(referral_codes.c.code, referral_codes.c.fingerprints).where(referral_codes.c.member_id == member.id)
        ).first()
        if row is not None:
            known = sorted(set(row.fingerprints) | set(fingerprints))
            if known != sorted(row.fingerprints):
                conn.execute(
                    update(referral_codes).where(referral_codes.c.member_id == member.id).values(fingerprints=known)
                )
            return ReferralCodeView(member_id=member.external_id, code=row.code), False
        code = _fresh_code(conn, program_id)
        conn.execute(
            insert(referral_codes),
            {
                "member_id": member.id,
                "program_id": program_id,
                "code": code,
                "fingerprints": sorted(set(fingerprints)),
                "created_at": now,
            },
        )
        return ReferralCodeView(member_id=member.external_id, code=code), True

    return db.run(work)


def _fresh_code(conn: Connection, program_id: int) -> str:
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        taken = conn.execute(
            select(referral_codes.c.member_id).where(
                referral_codes.c.program_id == program_id, referral_codes.c.code == code
            )
        ).first()
        if taken is None:
            return code


def sign_up(
    db: Database,
    cache: ProgramCache,
    program_id: int,
    referee_external_id: str,
    code: str,
    *,
    ip: str | None,
    fingerprints: Sequence[str] = (),
    now: datetime,
) -> ReferralView:
    """Records that a new member signed up with a referral code. A sign-up the fraud screen refuses is recorded
    as not eligible, with its reason; a code that does not exist, or is the member's own, is refused outright."""

    def work(conn: Connection) -> ReferralView:
        scheme = cache.in_force(conn, program_id, now).document.referrals
        if scheme is None:
            raise Conflict("this program has no referral scheme", field="code")
        if ip is not None and scheme.ip_burst is not None:
            _lock_ip(conn, program_id, ip)
        referee = member_service.require(conn, program_id, referee_external_id, lock=True)
        owner = conn.execute(
            select(referral_codes.c.member_id, referral_codes.c.fingerprints).where(
                referral_codes.c.program_id == program_id, referral_codes.c.code == normalize_code(code)
            )
        ).first()
        if owner is None:
            raise NotFound(f"no referral code {normalize_code(code)!r} in this program", field="code")
        if owner.member_id == referee.id:
            raise Invalid("a member cannot use their own referral code", field="code")
        if conn.execute(select(referrals.c.id).where(referrals.c.referee_id == referee.id)).first() is not None:
            raise Conflict(f"member {referee.external_id!r} was already referred", field="member_id")
        if conn.execute(
            select(orders.c.order_id)
            .where(orders.c.program_id == program_id, orders.c.member_id == referee.id)
            .limit(1)
        ).first():
            raise Conflict(f"member {referee.external_id!r} is not new: they have purchases", field="member_id")
        # The referrer's lock makes the weekly cap hold when several people sign up with one code at once.
        referrer = _member_by_id(conn, owner.member_id, lock=True)
        reason = screen(
            scheme,
            Party(referrer.email, referrer.phone, frozenset(owner.fingerprints) | _fingerprints_of(conn, referrer.id)),
            Party(referee.email, referee.phone, frozenset(fingerprints)),
            _recent(conn, program_id, scheme, referrer.id, ip, now),
        )
        conn.execute(
            insert(referrals),
            {
                "program_id": program_id,
                "referrer_id": referrer.id,
                "referee_id": referee.id,
                "status": (Status.PENDING if reason is None else Status.NOT_ELIGIBLE).value,
                "reason": reason,
                "ip": ip,
                "fingerprints": sorted(set(fingerprints)),
                "order_id": None,
                "rewards": {},
                "created_at": now,
                "decided_at": None if reason is None else now,
            },
        )
        if reason is not None:
            event = outbox.Emitted(
                program_id,
                outbox.EventType.REFERRAL_REJECTED,
                referrer.id,
                {"referee_id": referee.external_id, "reason": reason},
                now,
            )
            outbox.emit(conn, [event], now=now)
        return _view_of_referee(conn, referee.id, scheme, now)

    return db.run(work)


def _lock_ip(conn: Connection, program_id: int, ip: str) -> None:
    """Serialises sign-ups from one IP address in the program until the transaction ends, so that two of them
    cannot both count the same earlier sign-ups and both pass the burst cap. The referrer's lock does not do it:
    a burst spreads over many codes. Taken before any member lock, and only here, so it cannot deadlock.
    On SQLite the transaction already holds the single write lock (BEGIN IMMEDIATE)."""
    if conn.dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"{program_id}:{ip}".encode()).digest()
    conn.execute(
        text("SELECT pg_advisory_xact_lock(:space, :key)"),
        {"space": _IP_LOCK_SPACE, "key": int.from_bytes(digest[:4], "big", signed=True)},
    )


def _member_by_id(conn: Connection, member_id: int, *, lock: bool = False) -> MemberRow:
    found = conn.execute(select(members.c.external_id, members.c.program_id).where(members.c.id == member_id)).one()
    return member_service.require(conn, found.program_id, found.external_id, lock=lock)


def _fingerprints_of(conn: Connection, member_id: int) -> frozenset[str]:
    """Fingerprints the member showed when they were themselves referred."""
    row = conn.execute(select(referrals.c.fingerprints).where(referrals.c.referee_id == member_id)).first()
    return frozenset(row.fingerprints) if row is not None else frozenset()


def _recent(
    conn: Connection, program_id: int, scheme: ReferralScheme, referrer_id: int, ip: str | None, now: datetime
) -> Recent:
    this_week = conn.execute(
        select(func.count()).where(
            referrals.c.referrer_id == referrer_id,
            referrals.c.created_at > now - WEEK,
            referrals.c.status != Status.NOT_ELIGIBLE.value,
        )
    ).scalar_one()
    from_ip = 0
    if ip is not None and scheme.ip_burst is not None:
        from_ip = conn.execute(
            select(func.count()).where(
                referrals.c.program_id == program_id,
                referrals.c.ip == ip,
                referrals.c.created_at > now - timedelta(minutes=scheme.ip_burst.minutes),
            )
        ).scalar_one()
    return Recent(int(this_week), int(from_ip))


def made_by(
    conn: Connection, cache: ProgramCache, program_id: int, referrer_external_id: str, *, now: datetime
) -> list[ReferralView]:
    """The referrals a member made, newest first, each with its status (and why, when not eligible)."""
    referrer = member_service.require(conn, program_id, referrer_external_id)
    scheme = _scheme_or_none(conn, cache, program_id, now)
    ids = conn.execute(
        select(referrals.c.referee_id).where(referrals.c.referrer_id == referrer.id).order_by(referrals.c.id.desc())
    ).scalars()
    return [_view_of_referee(conn, referee_id, scheme, now) for referee_id in ids]


def _scheme_or_none(conn: Connection, cache: ProgramCache, program_id: int, now: datetime) -> ReferralScheme | None:
    try:
        return cache.in_force(conn, program_id, now).document.referrals
    except Invalid:
        return None


def _view_of_referee(conn: Connection, referee_id: int, scheme: ReferralScheme | None, now: datetime) -> ReferralView:
    referrer, referee = members.alias("referrer"), members.alias("referee")
    row = conn.execute(
        select(referrals, referrer.c.external_id.label("referrer_ext"), referee.c.external_id.label("referee_ext"))
        .join(referrer, referrer.c.id == referrals.c.referrer_id)
        .join(referee, referee.c.id == referrals.c.referee_id)
        .where(referrals.c.referee_id == referee_id)
    ).one()
    status, reason = Status(row.status), row.reason
    # A pending referral past its window has expired, even before a late purchase records it so.
    if status is Status.PENDING and scheme is not None and now > row.created_at + timedelta(days=scheme.within_days):
        status, reason = Status.EXPIRED, f"no qualifying purchase within {scheme.within_days} days"
    return ReferralView(
        referrer_id=row.referrer_ext,
        referee_id=row.referee_ext,
        status=status,
        eligible=status not in (Status.NOT_ELIGIBLE, Status.EXPIRED, Status.CLAWED_BACK),
        reason=reason,
        order_id=row.order_id,
        rewards=row.rewards,
        created_at=row.created_at,
        decided_at=row.decided_at,
    )


@cache
def _open_referrals_query(dialect: str) -> Select[Any]:
    """The open referrals of the members bound to `referees`. Built once: it runs for every batch of purchases,
    and building it took longer than running it."""
    return select(
        referrals.c.id,
        referrals.c.referee_id,
        referrals.c.referrer_id,
        referrals.c.status,
        referrals.c.order_id,
        referrals.c.rewards,
        referrals.c.created_at,
    ).where(
        ids_placeholder(dialect, referrals.c.referee_id, "referees"),
        referrals.c.status.in_([Status.PENDING.value, Status.REWARDED.value]),
    )


def after_events(
    conn: Connection, cache: ProgramCache, program_id: int, applied: Sequence[tuple[int, AnyEvent]], *, now: datetime
) -> None:
    """Rewards referrals whose new member just made a qualifying purchase, and claws back those whose qualifying
    order was refunded. Runs in the transaction that applied the events, after their orders were recorded.
    One indexed look-up when no event concerns a referred member."""
    relevant = [(member_id, e) for member_id, e in applied if isinstance(e, (Purchase, Refund))]
    if not relevant:
        return
    open_referrals: dict[int, dict[str, Any]] = {
        r.referee_id: dict(r._mapping)
        for r in conn.execute(
            _open_referrals_query(conn.dialect.name),
            {"referees": set_value(conn, sorted({m for m, _ in relevant}))},
        )
    }
    if not open_referrals:
        return
    status = {referee_id: Status(r["status"]) for referee_id, r in open_referrals.items()}
    for member_id, event in relevant:
        found = open_referrals.get(member_id)
        if found is None:
            continue
        program = cache.in_force(conn, program_id, event.occurred_at)
        scheme = program.document.referrals
        if scheme is None:
            continue
        if isinstance(event, Purchase) and status[member_id] is Status.PENDING:
            outcome = judge_purchase(scheme, found["created_at"], event.total, event.occurred_at)
            if outcome is Outcome.TOO_LATE:
                _decide(
                    conn,
                    found["id"],
                    Status.EXPIRED,
                    f"first qualifying purchase came after {scheme.within_days} days",
                    now,
                )
                status[member_id] = Status.EXPIRED
            elif outcome is Outcome.QUALIFIES:
                # Dated at the purchase, like the points it earned: a purchase imported late must not give
                # rewards that expire later than that purchase's own points.
                at = event.occurred_at
                given = {
                    side: _give(conn, program, program_id, found[f"{side}_id"], reward, side, at=at, now=now)
                    for side, reward in (("referrer", scheme.referrer), ("referee", scheme.referee))
                }
                conn.execute(
                    update(referrals)
                    .where(referrals.c.id == found["id"])
                    .values(status=Status.REWARDED.value, order_id=event.order_id, rewards=given, decided_at=now)
                )
                status[member_id] = Status.REWARDED
                converted = {
                    "referee_id": event.member_id,
                    "order_id": event.order_id,
                    "referrer_points": given["referrer"].get("points", 0),
                    "referee_points": given["referee"].get("points", 0),
                }
                outbox.emit(
                    conn,
                    [
                        outbox.Emitted(
                            program_id,
                            outbox.EventType.REFERRAL_CONVERTED,
                            found["referrer_id"],
                            converted,
                            event.occurred_at,
                        )
                    ],
                    now=now,
                )
                found |= {"order_id": event.order_id, "rewards": given}
        elif isinstance(event, Refund) and status[member_id] is Status.REWARDED:
            if found["order_id"] != event.order_id:
                continue
            order = conn.execute(
                select(orders.c.total, orders.c.refunded).where(
                    orders.c.program_id == program_id, orders.c.order_id == event.order_id
                )
            ).one()
            if refund_undoes(scheme, order.total, order.refunded):
                for side in ("referrer", "referee"):
                    given = found["rewards"].get(side, {})
                    _take_back(conn, program, program_id, found[f"{side}_id"], given, at=event.occurred_at, now=now)
                _decide(
                    conn, found["id"], Status.CLAWED_BACK, f"the qualifying order {event.order_id} was refunded", now
                )
                status[member_id] = Status.CLAWED_BACK


def _decide(conn: Connection, referral_id: int, status: Status, reason: str, now: datetime) -> None:
    conn.execute(
        update(referrals)
        .where(referrals.c.id == referral_id)
        .values(status=status.value, reason=reason, decided_at=now)
    )


def _give(
    conn: Connection,
    program: CompiledProgram,
    program_id: int,
    member_id: int,
    reward: ReferralReward,
    side: str,
    *,
    at: datetime,
    now: datetime,
) -> dict[str, Any]:
    """Gives one side its reward, as of `at` (the qualifying purchase's time); `now` is when it is posted."""
    given: dict[str, Any] = {}
    if reward.points:
        # The other side's member is not locked by the event being applied: lock it before moving its points.
        conn.execute(select(members.c.id).where(members.c.id == member_id).with_for_update()).one()
        owed = -ledger.balance_of(conn, member_id)[2]
        settled = min(reward.points, owed)
        transaction_id = ledger.post(
            conn,
            program_id=program_id,
            member_id=member_id,
            kind="referral",
            occurred_at=at,
            posted_at=now,
            memo=f"referral reward ({side}): {reward.points} points",
            member_postings=[
                ledger.MemberPosting(member_id, Account.DEBT, settled),
                ledger.MemberPosting(member_id, Account.AVAILABLE, reward.points - settled),
            ],
            program_postings=[Posting(Account.ISSUED, -reward.points)],
            program_version=program.version,
            reference=f"referral:{side}",
        )
        if reward.points - settled:
            lot = NewLot(
                reward.points - settled, False, at, expires_at(program.document.expiry, at, program.zone), None
            )
            ledger.add_lots(
                conn,
                program_id=program_id,
                member_id=member_id,
                transaction_id=transaction_id,
                new=[lot],
                earned_at=at,
            )
        given |= {"points": reward.points, "transaction_id": transaction_id}
    if reward.coupon_batch:
        try:
            given["coupon"] = coupons.issue_code(conn, program_id, reward.coupon_batch, member_id, now=now)
        except NotFound:
            # A program naming a batch that was never created must not make the purchase itself fail.
            given["coupon_missing"] = f"no coupon batch {reward.coupon_batch!r}: no code was given"
    return given


def _take_back(
    conn: Connection,
    program: CompiledProgram,
    program_id: int,
    member_id: int,
    given: dict[str, Any],
    *,
    at: datetime,
    now: datetime,
) -> None:
    """Takes a side's reward back, as of `at` (the refund's time); `now` is when it is posted."""
    points = int(given.get("points", 0))
    if points:
        conn.execute(select(members.c.id).where(members.c.id == member_id).with_for_update()).one()
        available = spending_order(ledger.open_lots(conn, member_id))
        taken = min(points, sum(lot.remaining for lot in available))
        missing = points - taken
        shortfall_account = (
            Account.DEBT
            if program.document.refunds.shortfall is RefundShortfall.NEGATIVE_BALANCE
            else Account.WRITE_OFF
        )
        mine = [ledger.MemberPosting(member_id, Account.AVAILABLE, -taken)]
        theirs = [Posting(Account.ISSUED, points)]
        if shortfall_account is Account.DEBT:
            mine.append(ledger.MemberPosting(member_id, Account.DEBT, -missing))
        else:
            theirs.append(Posting(Account.WRITE_OFF, -missing))
        ledger.post(
            conn,
            program_id=program_id,
            member_id=member_id,
            kind="referral",
            occurred_at=at,
            posted_at=now,
            memo=f"referral reward clawed back: the qualifying order was refunded ({points} points)",
            member_postings=mine,
            program_postings=theirs,
            program_version=program.version,
            reference="referral:clawback",
        )
        ledger.debit_lots(conn, plan_spend(available, taken))
    code = given.get("coupon")
    if code:
        # A reward coupon not yet used is revoked; one already used cannot be taken back.
        conn.execute(
            update(coupon_rows)
            .where(coupon_rows.c.program_id == program_id, coupon_rows.c.code == code, coupon_rows.c.uses == 0)
            .values(revoked_at=now)
        )
