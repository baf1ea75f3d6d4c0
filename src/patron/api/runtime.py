"""What every request handler shares: the database, the compiled-program cache and the clock."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from patron.api.group_commit import GroupCommit
from patron.services.program_cache import ProgramCache
from patron.store.database import Database


@dataclass(frozen=True, slots=True)
class Runtime:
    database: Database
    cache: ProgramCache
    clock: Callable[[], datetime]
    group_commit: GroupCommit | None = None  # None: one transaction per single event

    def now(self) -> datetime:
        return self.clock()


# A coroutine, though it does no I/O: FastAPI runs a plain function in the thread pool, a hop per request.
async def _runtime(request: Request) -> Runtime:
    runtime = getattr(request.app.state, "runtime", None)
    if not isinstance(runtime, Runtime):
        # Only reachable if the app is served without its lifespan (which opens the database).
        raise RuntimeError("the application has not started: run it with its lifespan")
    return runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]
