"""Member rows: find, lock, create."""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, case, insert, select, update

from patron.domain.members import MemberProfile
from patron.store.sets import id_in
from patron.store.tables import balances, members


@dataclass(frozen=True, slots=True)
class MemberRow:
    id: int
    external_id: str
    email: str | None
    phone: str | None
    birthday: date | None
    locale: str | None
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    marketing_consent: bool
    timezone: str | None = None


_COLUMNS = (
    members.c.id,
    members.c.external_id,
    members.c.email,
    members.c.phone,
    members.c.birthday,
    members.c.locale,
    members.c.attributes,
    members.c.created_at,
    members.c.updated_at,
    members.c.marketing_consent,
    members.c.timezone,
)


def find(conn: Connection, program_id: int, external_id: str, *, lock: bool = False) -> MemberRow | None:
    """With lock=True the row is held until the transaction ends (PostgreSQL; SQLite already holds the
    database write lock): every change to a member's points takes this lock first, so they never interleave."""
    query = select(*_COLUMNS).where(members.c.program_id == program_id, members.c.external_id == external_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else MemberRow(**row._asdict())


def create(conn: Connection, program_id: int, external_id: str, profile: MemberProfile, now: datetime) -> MemberRow:
    values = {"program_id": program_id, "external_id": external_id, **new_profile_columns(profile, now)}
    member_id = conn.execute(insert(members).returning(members.c.id), values).scalar_one()
    conn.execute(insert(balances), {"member_id": member_id, "available": 0, "pending": 0, "debt": 0})
    return MemberRow(
        int(member_id),
        external_id,
        profile.email,
        profile.phone,
        profile.birthday,
        profile.locale,
        dict(profile.attributes),
        now,
        now,
        bool(profile.marketing_consent),
        profile.timezone,
    )


def new_profile_columns(profile: MemberProfile, now: datetime) -> dict[str, Any]:
    """The members row of a new member (program and external id aside): consent not stated is no consent."""
    consent = profile.marketing_consent
    return {
        **profile.model_dump(exclude={"marketing_consent"}),
        "marketing_consent": bool(consent),
        "consent_changed_at": None if consent is None else now,
        "created_at": now,
        "updated_at": now,
    }


def update_profile(conn: Connection, member_id: int, profile: MemberProfile, now: datetime) -> None:
    values: dict[str, Any] = {**profile.model_dump(exclude={"marketing_consent"}), "updated_at": now}
    if profile.marketing_consent is not None:
        values["marketing_consent"] = profile.marketing_consent
        values["consent_changed_at"] = case(
            (members.c.marketing_consent == profile.marketing_consent, members.c.consent_changed_at), else_=now
        )
    conn.execute(update(members).where(members.c.id == member_id).values(**values))


def lock_many(conn: Connection, member_ids: list[int]) -> None:
    """Locks members in id order: two jobs locking overlapping sets can then never deadlock."""
    if member_ids and conn.dialect.name == "postgresql":
        conn.execute(
            select(members.c.id).where(id_in(conn, members.c.id, member_ids)).order_by(members.c.id).with_for_update()
        ).all()
