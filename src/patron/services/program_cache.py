"""Finding the compiled program version in force at a moment."""

import bisect
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, func, select

from patron.domain.engine import CompiledProgram
from patron.domain.program import ProgramDocument
from patron.services.errors import Conflict, Invalid, NotFound
from patron.store.tables import program_versions


@dataclass(frozen=True, slots=True)
class _Timeline:
    """A program's versions as (effective_from, version), ascending, as of its highest version `latest`."""

    latest: int | None
    starts: tuple[tuple[datetime, int], ...]

    def at(self, moment: datetime) -> int | None:
        # The version in force is the one with the latest start at or before the moment (the highest version
        # among those starting at the same instant): the last entry not after (moment, any version).
        index = bisect.bisect_right(self.starts, (moment, _ANY_VERSION))
        return self.starts[index - 1][1] if index else None


_ANY_VERSION = 1 << 62

# The highest version of a program: versions are only ever added, each numbered one above the last, so while this
# stays the same so does the whole timeline. Callers on a hot path read it within a statement of their own
# (`LATEST_VERSION` as a scalar subquery) and pass it in; others pay this one-index-lookup query.
LATEST_VERSION = (
    select(func.max(program_versions.c.version))
    .where(program_versions.c.program_id == bindparam("program_id"))
    .scalar_subquery()
)
_LATEST = select(LATEST_VERSION)
_TIMELINE = select(program_versions.c.effective_from, program_versions.c.version).where(
    program_versions.c.program_id == bindparam("program_id")
)


class ProgramCache:
    """Compiled versions by (program, version): versions are immutable, so they never go stale. Each program's
    timeline of versions is kept too, and read again only when a version above the last one known appears, so a
    version published by any process counts from the first transaction that can see it."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[int, int], CompiledProgram] = {}
        self._timelines: dict[int, _Timeline] = {}

    def in_force(self, conn: Connection, program: int, at: datetime) -> CompiledProgram:
        latest = conn.execute(_LATEST, {"program_id": program}).scalar()
        return self.in_force_given(conn, program, at, latest=None if latest is None else int(latest))

    def in_force_given(self, conn: Connection, program: int, at: datetime, *, latest: int | None) -> CompiledProgram:
        """As `in_force`, with the program's highest version (None: it has none yet) read by the caller in this
        transaction, as LATEST_VERSION."""
        version = self._timeline(conn, program, latest).at(at)
        if version is None:
            raise Invalid(f"no program version was in force at {at.isoformat()}", field="occurred_at")
        return self.version(conn, program, version)

    def timeline(self, conn: Connection, program: int, *, latest: int | None) -> tuple[tuple[datetime, int], ...]:
        """The program's versions as (effective_from, version), ascending, given its highest version read by the
        caller in this transaction (LATEST_VERSION)."""
        return self._timeline(conn, program, latest).starts

    def _timeline(self, conn: Connection, program: int, latest: int | None) -> _Timeline:
        timeline = self._timelines.get(program)
        if timeline is None or timeline.latest != latest:
            rows = conn.execute(_TIMELINE, {"program_id": program}).all()
            timeline = _Timeline(
                max((int(r.version) for r in rows), default=None),
                tuple(sorted((r.effective_from, int(r.version)) for r in rows)),
            )
            self._timelines[program] = timeline
        return timeline

    def all_in_force(self, conn: Connection, now: datetime) -> list[tuple[int, ProgramDocument]]:
        """Every program with a version in force at `now`, in id order, with that version's document: what the
        periodic jobs walk."""
        started = conn.execute(
            select(program_versions.c.program_id)
            .where(program_versions.c.effective_from <= now)
            .group_by(program_versions.c.program_id)
            .order_by(program_versions.c.program_id)
        ).scalars()
        return [(int(p), self.in_force(conn, int(p), now).document) for p in started]

    def in_force_now(self, conn: Connection, program: int, now: datetime) -> CompiledProgram:
        """For requests that carry no time of their own (redemptions, adjustments): no version is not their fault."""
        try:
            return self.in_force(conn, program, now)
        except Invalid as exc:
            raise Conflict("the program has no version in force yet: publish one first") from exc

    def version(self, conn: Connection, program: int, version: int) -> CompiledProgram:
        key = (program, version)
        if key not in self._compiled:
            document = conn.execute(
                select(program_versions.c.document).where(
                    program_versions.c.program_id == program, program_versions.c.version == version
                )
            ).scalar_one_or_none()
            if document is None:
                raise NotFound(f"no version {version}", field="version")
            self._compiled[key] = CompiledProgram.compile(ProgramDocument.model_validate(document), version)
        return self._compiled[key]
