"""Coupon batches, and checking and redeeming their codes at a checkout.

A batch is made either by the program document (its `coupon_batches` section, when a version declaring it is
published: `declare_batches`) or ad hoc over the API and the CLI (`create_batch`). Both are the same rows; a
declared batch's `created_by` names the program version that first declared it.

A code is used at most `uses_per_code` times whatever the race: the use is counted by a conditional UPDATE that
refuses to pass the limit, in the same transaction as the redemption row.
"""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, Field
from sqlalchemy import Connection, Row, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from patron.domain.amounts import Money
from patron.domain.carts import Cart
from patron.domain.coupons import (
    CODE_ALPHABET,
    DEFAULT_PATTERN,
    MAX_BATCH,
    RANDOM_MARK,
    BadPattern,
    CouponKind,
    Offer,
    Usage,
    Verdict,
    check_pattern,
    fill_pattern,
    judge,
    normalize_code,
)
from patron.domain.program import CouponBatch, RewardKind
from patron.services import members as member_service
from patron.services import outbox
from patron.services.errors import Conflict, Invalid, NotFound, ServiceError
from patron.services.hashing import request_fingerprint
from patron.services.idempotency import KeyedRequest
from patron.services.program_cache import ProgramCache
from patron.store import progress as progress_rows
from patron.store.database import Database
from patron.store.members import MemberRow
from patron.store.sets import text_in
from patron.store.tables import coupon_batches, coupon_redemptions, coupons, members, redemptions, reward_grants

_INSERT_CHUNK = 1_000


class BatchView(BaseModel):
    name: str
    offer: Offer
    description: str
    pattern: str
    codes_issued: int
    codes_used: int
    created_by: str
    created_at: datetime


class CodeView(BaseModel):
    code: str
    uses: int
    member_id: str | None


class BatchDetail(BatchView):
    codes: list[CodeView]


class CouponCheck(BaseModel):
    """Whether a code applies to a cart, and what it takes off."""

    code: str
    batch: str
    offer: Offer
    description: str
    applies: bool
    reason: str
    discount: Money
    total_after_discount: Money
    spend_more: Annotated[Money | None, Field(description="what the cart lacks to reach the minimum spend")] = None


class CouponRedemptionView(BaseModel):
    redemption_id: int
    code: str
    batch: str
    member_id: str | None
    order_id: str | None
    discount: Money
    total_after_discount: Money
    uses: int
    uses_per_code: int
    created_at: datetime


def create_batch(
    db: Database,
    program_id: int,
    name: str,
    offer: Offer,
    *,
    count: int,
    pattern: str = DEFAULT_PATTERN,
    actor: str,
    now: datetime,
) -> BatchDetail:
    """Makes `count` unique codes from `pattern` ('#' marks a random character), all giving `offer`."""
    if not 1 <= count <= MAX_BATCH:
        raise Invalid(f"a batch has from 1 to {MAX_BATCH:,} codes", field="count")
    pattern = normalize_code(pattern)
    try:
        check_pattern(pattern, count)
    except BadPattern as exc:
        raise Invalid(str(exc), field="pattern") from exc

    def work(conn: Connection) -> BatchDetail:
        if conn.execute(
            select(coupon_batches.c.id).where(coupon_batches.c.program_id == program_id, coupon_batches.c.name == name)
        ).first():
            raise Conflict(f"a coupon batch named {name!r} exists", field="name")
        batch_id = conn.execute(
            insert(coupon_batches).returning(coupon_batches.c.id),
            {
                "program_id": program_id,
                "name": name,
                "offer": offer.model_dump(mode="json"),
                "pattern": pattern,
                "created_by": actor,
                "created_at": now,
            },
        ).scalar_one()
        _insert_codes(conn, program_id, batch_id, _fresh_codes(conn, program_id, pattern, count), None, now)
        return batch_detail(conn, program_id, name)

    return db.run(work)


def declare_batches(
    conn: Connection, program_id: int, declared: Sequence[CouponBatch], *, actor: str, now: datetime
) -> list[str]:
    """Makes the declared batches that do not exist yet, and the codes a raised `count` adds, in the publishing
    transaction. A batch that exists (declared by an earlier version, or made over the API) must keep its offer
    and pattern, and cannot have fewer codes than it has: its codes are out in the world. Returns what was made."""
    made = []
    for index, batch in enumerate(declared):
        path = f"coupon_batches.{index}"
        row = conn.execute(
            select(coupon_batches.c.id, coupon_batches.c.offer, coupon_batches.c.pattern).where(
                coupon_batches.c.program_id == program_id, coupon_batches.c.name == batch.id
            )
        ).first()
        if row is None:
            batch_id = conn.execute(
                insert(coupon_batches).returning(coupon_batches.c.id),
                {
                    "program_id": program_id,
                    "name": batch.id,
                    "offer": batch.offer.model_dump(mode="json"),
                    "pattern": batch.pattern,
                    "created_by": actor,
                    "created_at": now,
                },
            ).scalar_one()
            have = 0
        else:
            batch_id = row.id
            _same_offer(batch.id, Offer.model_validate(row.offer), batch.offer, f"{path}.offer")
            if row.pattern != batch.pattern:
                raise Invalid(
                    f"coupon batch {batch.id!r} makes its codes from {row.pattern!r}, not {batch.pattern!r}; "
                    "a pattern cannot change once codes exist (declare a new batch)",
                    field=f"{path}.pattern",
                )
            have = conn.execute(
                select(func.count()).where(coupons.c.batch_id == batch_id, coupons.c.member_id.is_(None))
            ).scalar_one()
            if batch.count < have:
                raise Invalid(
                    f"coupon batch {batch.id!r} has {have} codes, not {batch.count}: codes given out cannot be "
                    "taken back, so a batch's count can rise but not fall",
                    field=f"{path}.count",
                )
        if batch.count > have:
            fresh = _fresh_codes(conn, program_id, batch.pattern, batch.count - have)
            _insert_codes(conn, program_id, batch_id, fresh, None, now)
            made.append(
                f"coupon batch {batch.id!r}: {len(fresh)} {'new ' if have else ''}codes, {batch.offer.describe()}"
            )
    return made


def _same_offer(name: str, existing: Offer, declared: Offer, path: str) -> None:
    for field in Offer.model_fields:
        was, now_declared = getattr(existing, field), getattr(declared, field)
        if was != now_declared:
            raise Invalid(
                f"coupon batch {name!r} gives codes with {field} {_shown(was)}, not {_shown(now_declared)}: "
                "an offer cannot change once its codes exist (declare a new batch)",
                field=f"{path}.{field}",
            )


def _shown(value: object) -> str:
    if value is None:
        return "none"
    return value.isoformat() if isinstance(value, datetime) else str(value)


def ensure_batch(conn: Connection, program_id: int, name: str, offer: Offer, *, actor: str, now: datetime) -> None:
    """A batch with no codes yet, for codes issued one at a time (prizes); nothing if it exists. Runs in the
    caller's transaction."""
    exists = conn.execute(
        select(coupon_batches.c.id).where(coupon_batches.c.program_id == program_id, coupon_batches.c.name == name)
    ).first()
    if exists is None:
        # Two first uses at once may both get here: the second insert is a no-op, not an error.
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(coupon_batches).on_conflict_do_nothing(),
            {
                "program_id": program_id,
                "name": name,
                "offer": offer.model_dump(mode="json"),
                "pattern": DEFAULT_PATTERN,
                "created_by": actor,
                "created_at": now,
            },
        )


def issue_code(conn: Connection, program_id: int, batch_name: str, member_id: int, *, now: datetime) -> str:
    """One new code of the batch that only this member can use (a referral reward, a prize). Runs in the
    caller's transaction."""
    row = conn.execute(
        select(coupon_batches.c.id, coupon_batches.c.pattern).where(
            coupon_batches.c.program_id == program_id, coupon_batches.c.name == batch_name
        )
    ).first()
    if row is None:
        raise NotFound(f"no coupon batch {batch_name!r}", field="coupon_batch")
    (code,) = _fresh_codes(conn, program_id, row.pattern, 1)
    _insert_codes(conn, program_id, row.id, [code], member_id, now)
    issued = outbox.Emitted(
        program_id, outbox.EventType.COUPON_ISSUED, member_id, {"code": code, "batch": batch_name}, now
    )
    outbox.emit(conn, [issued], now=now)
    return code


def _fresh_codes(conn: Connection, program_id: int, pattern: str, count: int) -> list[str]:
    wanted: set[str] = set()
    slots = pattern.count(RANDOM_MARK)
    while len(wanted) < count:
        missing = count - len(wanted)
        wanted |= {
            fill_pattern(pattern, "".join(secrets.choice(CODE_ALPHABET) for _ in range(slots))) for _ in range(missing)
        }
        ordered = sorted(wanted)
        for start in range(0, len(ordered), _INSERT_CHUNK):
            chunk = ordered[start : start + _INSERT_CHUNK]
            taken = conn.execute(
                select(coupons.c.code).where(coupons.c.program_id == program_id, text_in(conn, coupons.c.code, chunk))
            ).scalars()
            wanted -= set(taken)
    return sorted(wanted)


def _insert_codes(
    conn: Connection, program_id: int, batch_id: int, codes: Sequence[str], member_id: int | None, now: datetime
) -> None:
    for start in range(0, len(codes), _INSERT_CHUNK):
        conn.execute(
            insert(coupons),
            [
                {
                    "program_id": program_id,
                    "batch_id": batch_id,
                    "code": code,
                    "member_id": member_id,
                    "uses": 0,
                    "created_at": now,
                }
                for code in codes[start : start + _INSERT_CHUNK]
            ],
        )


def batches(conn: Connection, program_id: int) -> list[BatchView]:
    rows = conn.execute(
        select(coupon_batches).where(coupon_batches.c.program_id == program_id).order_by(coupon_batches.c.id)
    ).all()
    return [_batch_view(conn, row) for row in rows]


def batch_detail(conn: Connection, program_id: int, name: str, *, with_codes: bool = True) -> BatchDetail:
    row = conn.execute(
        select(coupon_batches).where(coupon_batches.c.program_id == program_id, coupon_batches.c.name == name)
    ).first()
    if row is None:
        raise NotFound(f"no coupon batch {name!r}", field="name")
    codes = []
    if with_codes:
        codes = [
            CodeView(code=r.code, uses=r.uses, member_id=r.external_id)
            for r in conn.execute(
                select(coupons.c.code, coupons.c.uses, members.c.external_id)
                .select_from(coupons.outerjoin(members, members.c.id == coupons.c.member_id))
                .where(coupons.c.batch_id == row.id)
                .order_by(coupons.c.id)
            )
        ]
    return BatchDetail(**_batch_view(conn, row).model_dump(), codes=codes)


def _batch_view(conn: Connection, row: Row[Any]) -> BatchView:
    issued, used = _code_counts(conn, row.id)
    offer = Offer.model_validate(row.offer)
    return BatchView(
        name=row.name,
        offer=offer,
        description=offer.describe(),
        pattern=row.pattern,
        codes_issued=issued,
        codes_used=used,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _code_counts(conn: Connection, batch_id: int) -> tuple[int, int]:
    issued = conn.execute(select(func.count()).where(coupons.c.batch_id == batch_id)).scalar_one()
    used = conn.execute(select(func.count()).where(coupons.c.batch_id == batch_id, coupons.c.uses > 0)).scalar_one()
    return int(issued), int(used)


def validate(
    db: Database, program_id: int, code: str, cart: Cart, *, member_external_id: str | None, now: datetime
) -> CouponCheck:
    """Whether the code would apply to the cart now. Writes nothing."""
    with db.read() as conn:
        member = None if member_external_id is None else member_service.require(conn, program_id, member_external_id)
        return _check(conn, program_id, code, cart, member, now=now)[0]


@dataclass(frozen=True, slots=True)
class _CouponRow:
    id: int
    batch_id: int


def _find(conn: Connection, program_id: int, wanted: str) -> Any:
    return conn.execute(
        select(
            coupons.c.id,
            coupons.c.code,
            coupons.c.uses,
            coupons.c.member_id,
            coupons.c.revoked_at,
            coupons.c.batch_id,
            coupon_batches.c.name.label("batch"),
            coupon_batches.c.offer,
        )
        .join(coupon_batches, coupon_batches.c.id == coupons.c.batch_id)
        .where(coupons.c.program_id == program_id, coupons.c.code == wanted)
    ).first()


def _check(
    conn: Connection,
    program_id: int,
    code: str,
    cart: Cart,
    member: MemberRow | None,
    *,
    now: datetime,
    adopt: bool = False,
) -> tuple[CouponCheck, _CouponRow, Offer, str]:
    wanted = normalize_code(code)
    row = _find(conn, program_id, wanted)
    if row is None:
        row = _reward_code(conn, program_id, wanted, member, now=now, adopt=adopt)
    if row is None:
        raise NotFound(f"no coupon {wanted!r} in this program", field="code")
    offer = Offer.model_validate(row.offer)
    if row.revoked_at is not None:
        verdict = Verdict(False, Decimal(0), f"revoked at {row.revoked_at.isoformat()}")
    elif row.member_id is not None and (member is None or member.id != row.member_id):
        verdict = Verdict(False, Decimal(0), "this code was given to another member", "member_id")
    else:
        member_uses = 0
        if member is not None:
            member_uses = conn.execute(
                select(func.count()).where(
                    coupon_redemptions.c.member_id == member.id, coupon_redemptions.c.batch_id == row.batch_id
                )
            ).scalar_one()
        bought_before = (
            member is not None
            and offer.kind is CouponKind.TRIAL
            and progress_rows.load_one(conn, member.id).skus.get(offer.sku or "", 0) > 0
        )
        usage = Usage(row.uses, member_uses, bought_before)
        verdict = judge(offer, cart, now=now, usage=usage, member_known=member is not None)
    check = CouponCheck(
        code=row.code,
        batch=row.batch,
        offer=offer,
        description=offer.describe(),
        applies=verdict.applies,
        reason=verdict.reason,
        discount=verdict.discount,
        total_after_discount=_after(cart, verdict.discount),
        spend_more=verdict.spend_more,
    )
    return check, _CouponRow(row.id, row.batch_id), offer, verdict.field


@dataclass(frozen=True, slots=True)
class _RewardCode:
    """A reward's code not yet used at a checkout, shaped as a row of the coupons table."""

    id: int
    code: str
    uses: int
    member_id: int
    revoked_at: datetime | None
    batch_id: int
    batch: str
    offer: dict[str, Any]


# Program versions never change once published, so one cache serves every request of the process.
_programs = ProgramCache()


def _reward_code(
    conn: Connection, program_id: int, code: str, member: MemberRow | None, *, now: datetime, adopt: bool
) -> Any:
    """A code a member got for a catalog reward (redeemed with points, or granted by a stamp card, a campaign, a
    birthday) is a coupon too: for a coupon reward its value off, for a free product that product. On first use
    (`adopt`) by its own member, whose lock the caller holds, it joins the coupons table, in a batch per reward, and
    from then on is counted like any code."""
    found = (
        conn.execute(
            select(redemptions.c.member_id, redemptions.c.reward_id).where(
                redemptions.c.program_id == program_id, redemptions.c.coupon_code == code
            )
        ).first()
        or conn.execute(
            select(reward_grants.c.member_id, reward_grants.c.reward_id).where(
                reward_grants.c.program_id == program_id, reward_grants.c.coupon_code == code
            )
        ).first()
    )
    if found is None:
        return None
    try:
        reward = _programs.in_force(conn, program_id, now).document.reward(found.reward_id)
    except Invalid:
        reward = None
    if reward is not None and reward.kind is RewardKind.COUPON and reward.value:
        offer = Offer(kind=CouponKind.AMOUNT_OFF, amount=reward.value)
    elif reward is not None and reward.kind is RewardKind.FREE_PRODUCT:
        offer = Offer(kind=CouponKind.FREE_PRODUCT, sku=reward.sku)
    else:
        return None  # a gift, or a reward no longer in the catalog: nothing a checkout can take off
    batch = f"reward.{reward.id}"[:64]
    if not adopt or member is None or member.id != found.member_id:
        # Judged as it stands (refused if the member is not its own): nothing written, no lock taken.
        return _RewardCode(0, code, 0, found.member_id, None, 0, batch, offer.model_dump(mode="json"))
    ensure_batch(conn, program_id, batch, offer, actor="reward", now=now)
    batch_id = conn.execute(
        select(coupon_batches.c.id).where(coupon_batches.c.program_id == program_id, coupon_batches.c.name == batch)
    ).scalar_one()
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(coupons).on_conflict_do_nothing(),
        {
            "program_id": program_id,
            "batch_id": batch_id,
            "code": code,
            "member_id": found.member_id,
            "uses": 0,
            "created_at": now,
        },
    )
    return _find(conn, program_id, code)


def _after(cart: Cart, discount: Decimal) -> Decimal:
    """What remains to pay for goods and shipping; a free-shipping discount comes off the shipping."""
    return cart.total + cart.shipping - discount


class CouponRefused(Conflict):
    title = "Coupon cannot be applied"


def redeem(
    db: Database,
    program_id: int,
    code: str,
    cart: Cart,
    *,
    member_external_id: str | None,
    order_id: str | None,
    now: datetime,
    idempotency_key: str | None = None,
) -> tuple[CouponRedemptionView, bool]:
    """Uses the code on the cart. Returns the redemption and whether it replays an earlier request's reply."""
    fingerprint = request_fingerprint(
        {
            "code": normalize_code(code),
            "cart": cart.model_dump(mode="json"),
            "member_id": member_external_id,
            "order_id": order_id,
        }
    )

    request = KeyedRequest(program_id, idempotency_key, "coupon.redeem", fingerprint, CouponRedemptionView)

    def work(conn: Connection) -> tuple[CouponRedemptionView, bool]:
        if (replayed := request.replay(conn)) is not None:
            return replayed
        # The member's lock serialises their uses, so a per-member limit holds under concurrent checkouts.
        member = (
            None
            if member_external_id is None
            else member_service.require(conn, program_id, member_external_id, lock=True)
        )
        check, row, offer, field = _check(conn, program_id, code, cart, member, now=now, adopt=True)
        if not check.applies:
            raise CouponRefused(f"coupon {check.code} cannot be applied: {check.reason}", field=field)
        counted = conn.execute(
            update(coupons)
            .where(coupons.c.id == row.id, coupons.c.uses < offer.uses_per_code)
            .values(uses=coupons.c.uses + 1)
            .returning(coupons.c.uses)
        ).scalar_one_or_none()
        if counted is None:
            raise CouponRefused(f"coupon {check.code} cannot be applied: already used", field="code")
        redemption_id = conn.execute(
            insert(coupon_redemptions).returning(coupon_redemptions.c.id),
            {
                "program_id": program_id,
                "coupon_id": row.id,
                "batch_id": row.batch_id,
                "member_id": None if member is None else member.id,
                "order_id": order_id,
                "cart_total": cart.total,
                "discount": check.discount,
                "created_at": now,
            },
        ).scalar_one()
        result = CouponRedemptionView(
            redemption_id=redemption_id,
            code=check.code,
            batch=check.batch,
            member_id=member_external_id,
            order_id=order_id,
            discount=check.discount,
            total_after_discount=check.total_after_discount,
            uses=counted,
            uses_per_code=offer.uses_per_code,
            created_at=now,
        )
        return request.remember(conn, result, now)

    try:
        return db.run(work)
    except (IntegrityError, ServiceError):
        # A concurrent request with the same Idempotency-Key may have won: it used the code (so ours was
        # refused) or stored the key first (so ours collided). Either way its reply is the answer.
        with db.read() as conn:
            replayed = request.replay(conn)
        if replayed is None:
            raise
        return replayed


def member_coupons(
    conn: Connection, program_id: int, member: MemberRow, cart: Cart, *, now: datetime
) -> list[CouponCheck]:
    """The codes given to this member that still have uses left (their catalog rewards' codes too), each judged
    against the cart."""
    rows = conn.execute(
        select(coupons.c.code, coupons.c.uses, coupons.c.revoked_at, coupon_batches.c.offer)
        .join(coupon_batches, coupon_batches.c.id == coupons.c.batch_id)
        .where(coupons.c.program_id == program_id, coupons.c.member_id == member.id)
        .order_by(coupons.c.id)
    ).all()
    known = {r.code for r in rows}
    usable = [r.code for r in rows if r.revoked_at is None and r.uses < Offer.model_validate(r.offer).uses_per_code]
    for table in (redemptions, reward_grants):
        found = conn.execute(
            select(table.c.coupon_code)
            .where(table.c.program_id == program_id, table.c.member_id == member.id, table.c.coupon_code.is_not(None))
            .order_by(table.c.id)
        ).scalars()
        usable.extend(code for code in found if code not in known)
    checks = []
    for code in usable:
        try:
            checks.append(_check(conn, program_id, code, cart, member, now=now)[0])
        except NotFound:
            continue  # a gift's or a withdrawn reward's code: nothing to take off a cart
    return checks


def check_code(
    conn: Connection, program_id: int, code: str, cart: Cart, member: MemberRow | None, *, now: datetime
) -> CouponCheck:
    """As `validate`, inside the caller's transaction."""
    return _check(conn, program_id, code, cart, member, now=now)[0]
