"""Mail from committed outbox events: the worker hands every batch to `MailConsumer.consume` inside the
dispatch transaction, so a message is queued exactly when its event is dispatched, and once.

An event that cannot become a message (no such reward any more, data from an older version of Patron) is
skipped with a log line: raising would hold back every later event, webhooks included.
"""

import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, func, select

from patron.domain.ledger import Account
from patron.mail import outbox
from patron.mail.kinds import (
    Birthday,
    CampaignOffer,
    Context,
    MailKind,
    PointsExpiring,
    ProgramChange,
    ProgramChanged,
    ReferralSuccess,
    RewardRedeemed,
    TierChanged,
)
from patron.services.outbox import EventType, OutboxMessage
from patron.store.tables import balances, postings, program_versions

log = logging.getLogger(__name__)

MessageFor = Callable[[Connection, OutboxMessage], tuple[MailKind, Context] | None]


class MailConsumer:
    name = "mail"

    def consume(self, conn: Connection, messages: Sequence[OutboxMessage], now: datetime) -> None:
        for message in messages:
            if message.type == EventType.PROGRAM_PUBLISHED.value:
                _announce_program_change(conn, message, now)
                continue
            build = _BUILDERS.get(message.type)
            if build is None or message.member_id is None:
                continue
            try:
                made = build(conn, message)
            except (KeyError, TypeError, ValueError, ValidationError) as exc:
                log.warning("no mail for outbox message %s (%s): %s", message.id, message.type, exc)
                continue
            if made is not None:
                kind, context = made
                outbox.queue(
                    conn,
                    program_id=message.program_id,
                    member_id=message.member_id,
                    kind=kind,
                    context=context,
                    now=now,
                    dedupe_key=f"event:{message.message_id}",
                )


def _reward_redeemed(conn: Connection, message: OutboxMessage) -> tuple[MailKind, Context] | None:
    data = message.data
    reward = _reward(conn, message.program_id, str(data["reward_id"]))
    name = str(reward["name"]) if reward else str(data["reward_id"])
    balance = _available_after(conn, _member(message), data.get("transaction_id"))
    context = RewardRedeemed(
        reward_name=name, cost=int(data["cost"]), coupon_code=data.get("coupon_code"), balance=balance
    )
    return MailKind.REWARD_REDEEMED, context


def _points_expiring(conn: Connection, message: OutboxMessage) -> tuple[MailKind, Context] | None:
    data = message.data
    expires_on = date.fromisoformat(str(data["expires_on"]))
    context = PointsExpiring(
        points=int(data["points"]), expires_on=expires_on, balance=_available_after(conn, _member(message), None)
    )
    return MailKind.POINTS_EXPIRING, context


def _tier_changed(conn: Connection, message: OutboxMessage) -> tuple[MailKind, Context] | None:
    data = message.data
    if data.get("to_tier") is None:
        return None  # no tier at all any more: nothing to name
    levels = _tier_levels(conn, message.program_id)
    order = [level["id"] for level in levels]
    names = {level["id"]: str(level["name"]) for level in levels}
    old, new = data.get("from_tier"), str(data["to_tier"])
    up = old is None or (old in order and new in order and order.index(new) > order.index(old))
    context = TierChanged(
        old_tier=names.get(old, old) if old is not None else None,
        new_tier=names.get(new, new),
        direction="up" if up else "down",
    )
    return MailKind.TIER_CHANGED, context


def _campaign_offer(conn: Connection, message: OutboxMessage) -> tuple[MailKind, Context] | None:
    data = message.data
    reward_name = None
    if data.get("reward") is not None:
        reward = _reward(conn, message.program_id, str(data["reward"]))
        reward_name = str(reward["name"]) if reward else str(data["reward"])
    multiplier = data.get("multiplier")
    # The campaign stops at `ends_at`; a campaign ending at midnight runs until the day before.
    last_day = (datetime.fromisoformat(str(data["ends_at"])) - timedelta(microseconds=1)).date()
    context = CampaignOffer(
        campaign_name=str(data["campaign_name"]),
        ends_on=last_day,
        bonus_points=int(data.get("bonus_points") or 0),
        multiplier=Decimal(str(multiplier)) if multiplier is not None else None,
        reward_name=reward_name,
    )
    return MailKind.CAMPAIGN_OFFER, context


def _birthday(conn: Connection, message: OutboxMessage) -> tuple[MailKind, Context] | None:
    return MailKind.BIRTHDAY, Birthday(bonus_points=max(int(message.data.get("points", 0)), 0))


def _referral(conn: Connection, message: OutboxMessage) -> tuple[MailKind, Context] | None:
    data = message.data
    points = int(data.get("referrer_points", data.get("points", 0)))
    if points <= 0:
        return None
    return MailKind.REFERRAL_SUCCESS, ReferralSuccess(points=points)


_BUILDERS: dict[str, MessageFor] = {
    EventType.REWARD_REDEEMED.value: _reward_redeemed,
    EventType.POINTS_EXPIRING_SOON.value: _points_expiring,
    EventType.TIER_CHANGED.value: _tier_changed,
    EventType.MEMBER_BIRTHDAY.value: _birthday,
    EventType.CAMPAIGN_OFFERED.value: _campaign_offer,
    EventType.REFERRAL_CONVERTED.value: _referral,
}


def _member(message: OutboxMessage) -> int:
    if message.member_id is None:
        raise ValueError("the event names no member")
    return message.member_id


def _available_after(conn: Connection, member_id: int, transaction_id: Any) -> int:
    """The member's available points right after `transaction_id` (now, if None): later events do not
    change what a receipt says."""
    if transaction_id is None:
        found = conn.execute(select(balances.c.available).where(balances.c.member_id == member_id)).scalar()
        return int(found or 0)
    total = conn.execute(
        select(func.coalesce(func.sum(postings.c.amount), 0)).where(
            postings.c.member_id == member_id,
            postings.c.account == Account.AVAILABLE.value,
            postings.c.transaction_id <= int(transaction_id),
        )
    ).scalar_one()
    return int(total)


def _documents(conn: Connection, program_id: int) -> list[tuple[int, dict[str, Any]]]:
    """The program's published documents, newest first."""
    rows = conn.execute(
        select(program_versions.c.version, program_versions.c.document)
        .where(program_versions.c.program_id == program_id)
        .order_by(program_versions.c.version.desc())
    ).all()
    return [(int(r.version), r.document) for r in rows]


def _reward(conn: Connection, program_id: int, reward_id: str) -> dict[str, Any] | None:
    for _, document in _documents(conn, program_id):
        for reward in document.get("rewards", []):
            if reward.get("id") == reward_id:
                return dict(reward)
    return None


def _tier_levels(conn: Connection, program_id: int) -> list[dict[str, Any]]:
    for _, document in _documents(conn, program_id):
        tiers = document.get("tiers")
        if tiers:
            return list(tiers.get("levels", []))
    return []


def _announce_program_change(conn: Connection, message: OutboxMessage, now: datetime) -> None:
    """A new version tells every member what changes for them, unless nothing they would notice does."""
    version = int(message.data["version"])
    documents = dict(_documents(conn, message.program_id))
    new, old = documents.get(version), documents.get(version - 1)
    if new is None or old is None:
        return  # the first version: there were no terms to change
    changes = program_changes(old, new)
    if not changes:
        return
    effective = datetime.fromisoformat(str(message.data["effective_from"]))
    context = ProgramChanged(version=version, effective_from=effective.date(), changes=changes)
    outbox.queue_for_all_members(
        conn,
        program_id=message.program_id,
        kind=MailKind.PROGRAM_CHANGED,
        context=context,
        now=now,
        dedupe_prefix=f"{MailKind.PROGRAM_CHANGED.value}:{version}",
    )


# Parts of a program document a member notices, and the sentence each change gets.
_SECTIONS = {
    "earning": "earning",
    "rules": "earning",
    "pending_days": "earning",
    "campaigns": "earning",
    "expiry": "expiry",
    "tiers": "tiers",
    "refunds": "refunds",
    "stamp_cards": "other",
    "birthday": "other",
    "anniversary": "other",
    "referrals": "other",
}


def program_changes(old: dict[str, Any], new: dict[str, Any]) -> list[ProgramChange]:
    """What changed between two program documents, in the terms of the program-change email."""
    found: list[ProgramChange] = []
    old_rewards = {r["id"]: r for r in old.get("rewards", [])}
    new_rewards = {r["id"]: r for r in new.get("rewards", [])}
    for reward_id, reward in new_rewards.items():
        before = old_rewards.get(reward_id)
        if before is None:
            found.append(ProgramChange(what="reward_added", name=reward["name"], new_cost=reward["cost"]))
        elif before["cost"] != reward["cost"]:
            change = ProgramChange(
                what="reward_cost", name=reward["name"], old_cost=before["cost"], new_cost=reward["cost"]
            )
            found.append(change)
    for reward_id, reward in old_rewards.items():
        if reward_id not in new_rewards:
            found.append(ProgramChange(what="reward_removed", name=reward["name"]))
    sections: list[str] = []
    for key, section in _SECTIONS.items():
        if old.get(key) != new.get(key) and section not in sections:
            sections.append(section)
    order = ["earning", "expiry", "tiers", "refunds", "other"]
    found.extend(ProgramChange.model_validate({"what": s}) for s in sorted(sections, key=order.index))
    return found
