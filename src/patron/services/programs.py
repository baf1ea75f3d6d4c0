"""Publishing program versions and listing them."""

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, insert, select

from patron.domain.program import ProgramDocument, RewardKind
from patron.services import announcements, outbox
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
        outbox.emit(
            conn,
            announcements.published(program, version=version, effective_from=start, published_by=actor, at=now),
            now=now,
        )
        return PublishedVersion(slug, version, start, now, actor, document)

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
