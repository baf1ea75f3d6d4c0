"""Finding the compiled program version in force at a moment."""

from datetime import datetime

from sqlalchemy import Connection, select

from patron.domain.engine import CompiledProgram
from patron.domain.program import ProgramDocument
from patron.services.errors import Conflict, Invalid, NotFound
from patron.store.tables import program_versions


class ProgramCache:
    """Compiled versions by (program, version): versions are immutable, so they never go stale."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[int, int], CompiledProgram] = {}

    def in_force(self, conn: Connection, program: int, at: datetime) -> CompiledProgram:
        version = conn.execute(
            select(program_versions.c.version)
            .where(program_versions.c.program_id == program, program_versions.c.effective_from <= at)
            .order_by(program_versions.c.effective_from.desc(), program_versions.c.version.desc())
            .limit(1)
        ).scalar_one_or_none()
        if version is None:
            raise Invalid(f"no program version was in force at {at.isoformat()}", field="occurred_at")
        return self.version(conn, program, int(version))

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
