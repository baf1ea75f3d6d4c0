"""The most a FastAPI server can answer here: POST /v1/events with Patron's own request and reply models, and
nothing behind them (no key, no database, no engine).

Served by uvicorn exactly as the API is (bench.server), and loaded by the same 16 clients, it measures what the
HTTP stack and the two models alone allow on this machine: API ingest cannot go faster than this, so beside the
raw-SQL baseline it shows which share of that baseline any FastAPI server could reach.
"""

from fastapi import FastAPI, status

from patron.domain.events import Event
from patron.services.views import Balance, EventReceipt


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/events", status_code=status.HTTP_201_CREATED)
    async def post_event(event: Event) -> EventReceipt:
        # A receipt of the real shape, so that serializing it costs what the API's does.
        return EventReceipt(
            event_id=event.event_id,
            member_id=event.member_id,
            type=event.type,
            program_version=1,
            points=0,
            pending_points=0,
            transaction_id=None,
            rules=[],
            notes=[],
            balance=Balance(available=0, pending=0, owed=0),
        )

    @app.get("/health")
    async def health() -> dict[str, str]:  # what bench.server waits for
        return {"status": "ok"}

    return app
