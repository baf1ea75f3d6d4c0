"""Publishing program versions and listing them.

Coupon batches and raffles are sections of the program document (`coupon_batches`, `raffles`), but unlike rules
they are objects with a life of their own: codes handed to customers, entries bought with points, a secret seed.
So publishing a version makes, in the same transaction, those the version declares that do not exist yet, found by
their id (the batch's or raffle's name): codes are generated for a batch; a raffle gets its secret seed, whose
SHA-256 is published at once. A later version that declares them again makes nothing new, and must keep their
terms (a 422 naming the field otherwise, and nothing is published): a batch may only raise its `count`, which adds
the missing codes; a raffle's terms never change, and its seed is never drawn again. A version that leaves one out
does not withdraw it: codes stay valid and entries stay in the draw. The row's `created_by` records the version
that first declared it; no other column is needed.

An object made over the API or the CLI with the same name is the same object: a version may declare it, on the
same terms, and from then on it is part of the program document.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, insert, select

from patron.domain.program import ProgramDocument, RewardKind
from patron.services import announcements, coupons, outbox, raffles
from patron.services.errors import Conflict, Invalid, NotFound
from patron.store.database import Database
from patron.store.tables import campaign_budgets, program_versions, programs, reward_stock
from patron.store.upsert import insert_or_ignore


def parse_document(text: str) -> dict[str, Any]:
    """YAML or JSON (JSON is YAML) text to a mapping; validation happens in ProgramDocument."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise Invalid(f"not valid YAML or JSON: {exc}", field="document") from exc
    if not isinstance(data, dict):
        raise Invalid("a program document is a mapping of fields", field="document")
    return data


def read_document(path: Path) -> ProgramDocument:
    return ProgramDocument.model_validate(parse_document(path.read_text(encoding="utf-8")))


@dataclass(frozen=True, slots=True)
class PublishedVersion:
    program: str
    version: int
    effective_from: datetime
    published_at: datetime
    published_by: str
    document: ProgramDocument
    made: tuple[str, ...] = ()  # the coupon batches and raffles this publication made, described


def create_program(db: Database, slug: str, *, now: datetime) -> int:
    with db.write() as conn:
        if conn.execute(select(programs.c.id).where(programs.c.slug == slug)).first():
            raise Conflict(f"program {slug!r} exists", field="slug")
        return int(
            conn.execute(insert(programs).returning(programs.c.id), {"slug": slug, "created_at": now}).scalar_one()
        )


def program_id(conn: Connection, slug: str) -> int:
    found = conn.execute(select(programs.c.id).where(programs.c.slug == slug)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no program {slug!r}", field="program")
    return int(found)


def publish(
    db: Database,
    program: int,
    document: ProgramDocument,
    *,
    actor: str,
    now: datetime,
    effective_from: datetime | None = None,
) -> PublishedVersion:
    """Adds a new immutable version. Events that occurred from `effective_from` on are judged by it."""

    def work(conn: Connection) -> PublishedVersion:
        slug = conn.execute(select(programs.c.slug).where(programs.c.id == program).with_for_update()).scalar_one()
        latest = conn.execute(
            select(program_versions.c.version)
            .where(program_versions.c.program_id == program)
            .order_by(program_versions.c.version.desc())
            .limit(1)
        ).scalar_one_or_none()
        version = (latest or 0) + 1
        start = effective_from or now
        conn.execute(
            insert(program_versions),
            {
                "program_id": program,
                "version": version,
                "effective_from": start,
                "published_at": now,
                "published_by": actor,
                "document": json.loads(document.model_dump_json()),
            },
        )
        gifts = [r.id for r in document.rewards if r.kind is RewardKind.GIFT]
        if gifts:
            insert_or_ignore(conn, reward_stock, [{"program_id": program, "reward_id": g, "given": 0} for g in gifts])
        budgeted = [c.id for c in document.campaigns if c.budget_points is not None]
        if budgeted:
            insert_or_ignore(
                conn, campaign_budgets, [{"program_id": program, "campaign_id": c, "spent": 0} for c in budgeted]
            )
        declared_by = f"program version {version}"
        made = [
            *coupons.declare_batches(conn, program, document.coupon_batches, actor=declared_by, now=now),
            *raffles.declare(conn, program, document.raffles, actor=declared_by, now=now, starts=start),
        ]
        outbox.emit(
            conn,
            announcements.published(program, version=version, effective_from=start, published_by=actor, at=now),
            now=now,
        )
        return PublishedVersion(slug, version, start, now, actor, document, tuple(made))

    return db.run(work)


def list_versions(conn: Connection, program: int) -> list[PublishedVersion]:
    slug = conn.execute(select(programs.c.slug).where(programs.c.id == program)).scalar_one()
    rows = conn.execute(
        select(program_versions).where(program_versions.c.program_id == program).order_by(program_versions.c.version)
    ).all()
    return [
        PublishedVersion(
            slug,
            r.version,
            r.effective_from,
            r.published_at,
            r.published_by,
            ProgramDocument.model_validate(r.document),
        )
        for r in rows
    ]
