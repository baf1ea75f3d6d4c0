"""Spending points on rewards: first-to-expire lots first, gift stock never below zero, once per key."""

import secrets
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update

from patron.domain import tiers
from patron.domain.ledger import Account, InsufficientPoints, Posting, plan_spend
from patron.domain.program import RewardKind
from patron.services import announcements, maintenance, outbox
from patron.services import members as member_service
from patron.services.errors import Conflict, InsufficientPointsError, NotEligible, NotFound, OutOfStock
from patron.services.hashing import request_fingerprint
from patron.services.idempotency import KeyedRequest, run_keyed
from patron.services.program_cache import ProgramCache
from patron.services.views import RedemptionView
from patron.store import ledger
from patron.store.database import Database
from patron.store.progress import load_one as load_progress
from patron.store.tables import redemptions, reward_stock

# Crockford's base32 without I, L, O, U: codes read aloud at a till are not mistaken.
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def coupon_code() -> str:
    body = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))  # 60 bits: not guessable
    return f"{body[:4]}-{body[4:8]}-{body[8:]}"


def redeem(
    db: Database,
    cache: ProgramCache,
    program_id: int,
    member_external_id: str,
    reward_id: str,
    *,
    now: datetime,
    idempotency_key: str | None = None,
) -> tuple[RedemptionView, bool]:
    """Returns the redemption and whether it is a replay of an earlier request with the same key."""
    fingerprint = request_fingerprint({"member_id": member_external_id, "reward_id": reward_id})

    request = KeyedRequest(program_id, idempotency_key, "redeem", fingerprint, RedemptionView)

    def work(conn: Connection) -> tuple[RedemptionView, bool]:
        if (replayed := request.replay(conn)) is not None:
            return replayed
        member = member_service.require(conn, program_id, member_external_id, lock=True)
        # A concurrent request with this key held the member lock until it committed: look again now that the
        # lock is ours, or the request would be carried out twice (or refused for the points the first one spent).
        if (replayed := request.replay(conn)) is not None:
            return replayed
        program = cache.in_force_now(conn, program_id, now)
        reward = program.document.reward(reward_id)
        if reward is None:
            raise NotFound(f"no reward {reward_id!r} in program version {program.version}", field="reward_id")
        refusal = tiers.reward_refusal(
            program.document, reward, tiers.tier_at(program.document, load_progress(conn, member.id), now), now
        )
        if refusal is not None:
            raise NotEligible(refusal, field="reward_id")
        if reward.per_member_limit is not None:
            taken = conn.execute(
                select(func.count()).where(redemptions.c.member_id == member.id, redemptions.c.reward_id == reward.id)
            ).scalar_one()
            if taken >= reward.per_member_limit:
                raise Conflict(f"{reward.name!r} is limited to {reward.per_member_limit} per member", field="reward_id")
        maintenance.expire_due_lots_of(conn, member.id, now=now)
        try:
            debits = plan_spend(ledger.open_lots(conn, member.id), reward.cost)
        except InsufficientPoints as exc:
            raise InsufficientPointsError(
                f"{reward.name!r} costs {exc.needed} points; {exc.available} are available", field="reward_id"
            ) from exc
        if reward.kind is RewardKind.GIFT:
            assert reward.stock is not None
            taken_one = conn.execute(
                update(reward_stock)
                .where(
                    reward_stock.c.program_id == program_id,
                    reward_stock.c.reward_id == reward.id,
                    reward_stock.c.given < reward.stock,
                )
                .values(given=reward_stock.c.given + 1)
            )
            if taken_one.rowcount != 1:
                raise OutOfStock(f"{reward.name!r} is out of stock", field="reward_id")
        transaction_id = ledger.post(
            conn,
            program_id=program_id,
            member_id=member.id,
            kind="redeem",
            occurred_at=now,
            posted_at=now,
            memo=f"redeemed {reward.id} for {reward.cost} points",
            member_postings=[ledger.MemberPosting(member.id, Account.AVAILABLE, -reward.cost)],
            program_postings=[Posting(Account.REDEEMED, reward.cost)],
            program_version=program.version,
            reference=f"reward:{reward.id}",
        )
        ledger.debit_lots(conn, debits)
        code = coupon_code() if reward.kind in (RewardKind.COUPON, RewardKind.FREE_PRODUCT) else None
        redemption_id = conn.execute(
            insert(redemptions).returning(redemptions.c.id),
            {
                "program_id": program_id,
                "member_id": member.id,
                "reward_id": reward.id,
                "reward_kind": reward.kind.value,
                "cost": reward.cost,
                "coupon_code": code,
                "transaction_id": transaction_id,
                "created_at": now,
            },
        ).scalar_one()
        outbox.emit(
            conn,
            announcements.redeemed(
                program_id,
                member.id,
                redemption_id=redemption_id,
                reward_id=reward.id,
                reward_kind=reward.kind.value,
                cost=reward.cost,
                coupon_code=code,
                transaction_id=transaction_id,
                at=now,
            ),
            now=now,
        )
        result = RedemptionView(
            redemption_id=redemption_id,
            member_id=member.external_id,
            reward_id=reward.id,
            reward_kind=reward.kind.value,
            cost=reward.cost,
            coupon_code=code,
            transaction_id=transaction_id,
            created_at=now,
            balance=member_service.balance(conn, member.id),
        )
        return request.remember(conn, result, now)

    return run_keyed(db, work, request.replay)
