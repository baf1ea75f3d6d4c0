"""Reporting what members did: one event, or a batch where each event succeeds or fails on its own."""

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from patron.api.auth import EventsKey
from patron.api.problems import Problem, field_errors, from_service_error, invalid, responses
from patron.api.runtime import RuntimeDep
from patron.api.text import RefuseNul, nul_errors
from patron.domain.engine import AnyEvent
from patron.domain.events import Event
from patron.observability import metrics
from patron.services import events
from patron.services.errors import Invalid, ServiceError
from patron.services.views import EventReceipt

MAX_BATCH = 1000
# Tills and servers keep imperfect time; an event stamped later than this ahead of our clock has a wrong date
# (and a far-future one, such as year 9999, would overflow the calendar when its lots' expiry is computed).
CLOCK_SKEW = timedelta(minutes=15)
_EVENT: TypeAdapter[AnyEvent] = TypeAdapter(Event)

router = APIRouter(prefix="/v1/events", tags=["events"], responses=responses(401, 403))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Report an event: 201 when processed now, 200 with the same receipt when it is a retry",
    description="The same event_id with a different body is refused with 409 and changes nothing. "
    "With dry_run=true the receipt says what the event would earn now, and nothing is written.",
    responses={200: {"model": EventReceipt, "description": "a retry, or a dry run"}, **responses(404, 409, 422)},
    dependencies=[RefuseNul],
)
async def post_event(
    event: Event,
    key: EventsKey,
    runtime: RuntimeDep,
    response: Response,
    dry_run: Annotated[bool, Query(description="decide, but write nothing")] = False,
) -> EventReceipt:
    # A coroutine that sends the database work to the thread pool in one hop; as a plain function, FastAPI would
    # hop there and back twice (the function, then checking its reply).
    _refuse_future(event, runtime.now())
    if dry_run:
        response.status_code = status.HTTP_200_OK
        return await run_in_threadpool(events.dry_run, runtime.database, runtime.cache, key.program_id, event)
    if runtime.group_commit is not None:
        receipt, replayed = await runtime.group_commit.submit(key.program_id, event)
    else:
        receipt, replayed = await run_in_threadpool(
            events.ingest_reporting_replay, runtime.database, runtime.cache, key.program_id, event, now=runtime.now()
        )
    if replayed:
        response.status_code = status.HTTP_200_OK
    return receipt


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Items are checked one by one below, so a malformed event fails alone instead of failing the whole batch.
    events: Annotated[
        list[Any],
        Field(min_length=1, max_length=MAX_BATCH, description="events as POST /v1/events takes them"),
    ]


class Processed(BaseModel):
    index: int
    status: Literal[200, 201] = Field(description="201: processed now; 200: a retry, the first receipt")
    receipt: EventReceipt


class Failed(BaseModel):
    index: int
    status: int = Field(description="the HTTP status this event alone would have got")
    problem: Problem


class BatchResults(BaseModel):
    results: list[Processed | Failed]


@router.post(
    "/batch",
    summary="Report up to 1000 events; one result per event, in order",
    description="The reply is 200 whenever the batch itself is well-formed; each result carries its own status.",
    responses=responses(422),
)
def post_batch(batch: Batch, key: EventsKey, runtime: RuntimeDep) -> BatchResults:
    results: dict[int, Processed | Failed] = {}
    parsed: list[tuple[int, AnyEvent]] = []
    now = runtime.now()
    for index, item in enumerate(batch.events):
        if unstorable := nul_errors(item):
            results[index] = Failed(index=index, status=422, problem=invalid(field_errors(unstorable, item)))
            continue
        try:
            event = _EVENT.validate_python(item)
            _refuse_future(event, now)
        except ValidationError as exc:
            results[index] = Failed(index=index, status=422, problem=invalid(field_errors(exc.errors(), item)))
        except ServiceError as exc:
            results[index] = Failed(index=index, status=exc.status, problem=from_service_error(exc))
        else:
            parsed.append((index, event))
    if parsed:
        outcomes = events.ingest_batch_reporting_replays(
            runtime.database, runtime.cache, key.program_id, [event for _, event in parsed], now=now
        )
        for (index, _), outcome in zip(parsed, outcomes, strict=True):
            results[index] = _result(index, outcome)
    metrics.count_ingested(r.status for r in results.values())
    return BatchResults(results=[results[i] for i in range(len(batch.events))])


def _refuse_future(event: AnyEvent, now: datetime) -> None:
    if event.occurred_at > now + CLOCK_SKEW:
        raise Invalid(
            f"occurred_at {event.occurred_at.isoformat()} is in the future (it is now {now.isoformat()})",
            field="occurred_at",
        )


def _result(index: int, outcome: tuple[EventReceipt, bool] | ServiceError) -> Processed | Failed:
    if isinstance(outcome, ServiceError):
        return Failed(index=index, status=outcome.status, problem=from_service_error(outcome))
    receipt, replayed = outcome
    return Processed(index=index, status=200 if replayed else 201, receipt=receipt)
