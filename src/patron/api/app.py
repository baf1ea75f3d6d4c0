"""The HTTP API: `uvicorn --factory patron.api.app:create_app`.

Nothing connects at import time: the database is opened (and migrated) when the app starts, once per worker.
"""

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from patron import __version__
from patron.api import problems
from patron.api.group_commit import GroupCommit, ingesting
from patron.api.routes import (
    adjustments,
    cart,
    coupons,
    events,
    health,
    loyalty,
    members,
    metrics,
    program,
    raffles,
    redemptions,
    referrals,
    rewards,
    unsubscribe,
    webhooks,
)
from patron.api.runtime import Runtime
from patron.observability.http import RequestMetrics
from patron.services.clock import utcnow
from patron.services.program_cache import ProgramCache
from patron.settings import Settings
from patron.store.database import Database
from patron.store.migrate import migrate


def create_app(
    settings: Settings | None = None,
    database: Database | None = None,
    *,
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """A database passed in stays the caller's (it is not disposed at shutdown); `clock` lets tests set the time."""

    config = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = database is None
        # A server's commits do not checkpoint SQLite's log: a thread does, so no request waits for it.
        db = (
            Database(config.database_url, pool_size=config.pool_size, background_checkpoints=True)
            if database is None
            else database
        )
        try:
            await run_in_threadpool(migrate, db)
            cache = ProgramCache()
            group = (
                GroupCommit(
                    ingesting(db, cache, clock),
                    max_batch=config.group_commit_max_batch,
                    linger=config.group_commit_linger_ms / 1000,
                )
                if config.group_commit
                else None
            )
            app.state.runtime = Runtime(db, cache, clock, group)
            if owned:
                # A server process: what start-up built (modules, the app, its routes, the schema) lives as long as
                # the process, and every full collection walked it all, stopping requests for 80-100 ms a few times
                # a minute under load. Frozen, it is left out of collections (2 ms each then).
                gc.collect()
                gc.freeze()
            try:
                yield
            finally:
                if group is not None:
                    await group.drain()
        finally:
            if owned:
                db.dispose()

    app = FastAPI(
        title="Patron",
        version=__version__,
        summary="Self-hosted customer loyalty engine: a points ledger you can trust.",
        description="Every route except /health needs `Authorization: Bearer <API key>`. A key belongs to one "
        "program and sees nothing else. Errors are RFC 9457 problem details (application/problem+json).",
        lifespan=lifespan,
    )
    # Read by the unsubscribe page for the key that signs its links.
    app.state.settings = config
    problems.install(app)
    app.add_middleware(RequestMetrics)
    for module in (
        health,
        members,
        events,
        rewards,
        redemptions,
        adjustments,
        program,
        coupons,
        raffles,
        referrals,
        cart,
        loyalty,
        unsubscribe,
        webhooks,
        metrics,
    ):
        app.include_router(module.router)
    _document_problems(app)
    return app


def _document_problems(app: FastAPI) -> None:
    """Error replies in the OpenAPI document as they are: problem+json, not FastAPI's default 422 shape."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for code, response in operation.get("responses", {}).items():
                    if code[0] in "45" and "content" in response:
                        response["content"] = {problems.PROBLEM_JSON: problem}
        for unused in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
