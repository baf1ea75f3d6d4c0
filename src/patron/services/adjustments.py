"""Manual corrections by an authorised person: a reason, an audit row, a balanced posting."""

from datetime import datetime

from sqlalchemy import Connection, insert

from patron.domain.calendar import expires_at
from patron.domain.engine import NewLot
from patron.domain.ledger import Account, InsufficientPoints, Posting, plan_spend
from patron.services import announcements, maintenance, outbox
from patron.services import members as member_service
from patron.services.errors import InsufficientPointsError, Invalid
from patron.services.hashing import request_fingerprint
from patron.services.idempotency import KeyedRequest, run_keyed
from patron.services.program_cache import ProgramCache
from patron.services.views import AdjustmentView
from patron.store import ledger
from patron.store.database import Database
from patron.store.tables import audit_log


def adjust(
    db: Database,
    cache: ProgramCache,
    program_id: int,
    member_external_id: str,
    points: int,
    reason: str,
    *,
    actor: str,
    now: datetime,
    idempotency_key: str | None = None,
) -> tuple[AdjustmentView, bool]:
    """Adds (points > 0) or removes (points < 0) available points. Removal never takes a balance below zero."""
    if points == 0:
        raise Invalid("an adjustment of 0 points changes nothing", field="points")
    if not reason.strip():
        raise Invalid("say why: adjustments are audited", field="reason")
    fingerprint = request_fingerprint({"member_id": member_external_id, "points": points, "reason": reason})
    request = KeyedRequest(program_id, idempotency_key, "adjust", fingerprint, AdjustmentView)

    def work(conn: Connection) -> tuple[AdjustmentView, bool]:
        if (replayed := request.replay(conn)) is not None:
            return replayed
        member = member_service.require(conn, program_id, member_external_id, lock=True)
        # A concurrent request with this key held the member lock until it committed: look again now that the
        # lock is ours, or the request would be carried out twice (or refused for the points the first one spent).
        if (replayed := request.replay(conn)) is not None:
            return replayed
        program = cache.in_force_now(conn, program_id, now)
        # Points owed from an earlier refund are settled before anything becomes available.
        settled = min(points, -ledger.balance_of(conn, member.id)[2]) if points > 0 else 0
        mine = [
            ledger.MemberPosting(member.id, Account.DEBT, settled),
            ledger.MemberPosting(member.id, Account.AVAILABLE, points - settled),
        ]
        debits = []
        if points < 0:
            maintenance.expire_due_lots_of(conn, member.id, now=now)
            try:
                debits = plan_spend(ledger.open_lots(conn, member.id), -points)
            except InsufficientPoints as exc:
                raise InsufficientPointsError(
                    f"cannot remove {exc.needed} points: {exc.available} are available", field="points"
                ) from exc
        transaction_id = ledger.post(
            conn,
            program_id=program_id,
            member_id=member.id,
            kind="adjust",
            occurred_at=now,
            posted_at=now,
            memo=f"adjustment by {actor}: {reason}",
            member_postings=mine,
            program_postings=[Posting(Account.ADJUSTMENTS, -points)],
            program_version=program.version,
            reference=f"adjust:{idempotency_key}" if idempotency_key else None,
        )
        if points - settled > 0:
            lot = NewLot(points - settled, False, now, expires_at(program.document.expiry, now, program.zone), None)
            ledger.add_lots(
                conn,
                program_id=program_id,
                member_id=member.id,
                transaction_id=transaction_id,
                new=[lot],
                earned_at=now,
            )
        ledger.debit_lots(conn, debits)
        conn.execute(
            insert(audit_log),
            {
                "program_id": program_id,
                "actor": actor,
                "action": "points.adjust",
                "member_id": member.id,
                "reason": reason,
                "detail": {"points": points, "transaction_id": transaction_id},
                "created_at": now,
            },
        )
        outbox.emit(
            conn,
            announcements.adjusted(
                program_id, member.id, points=points, reason=reason, actor=actor, transaction_id=transaction_id, at=now
            ),
            now=now,
        )
        result = AdjustmentView(
            member_id=member.external_id,
            points=points,
            reason=reason,
            transaction_id=transaction_id,
            balance=member_service.balance(conn, member.id),
        )
        return request.remember(conn, result, now)

    return run_keyed(db, work, request.replay)
