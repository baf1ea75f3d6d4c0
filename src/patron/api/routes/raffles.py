"""Points raffles: create (admin), buy entries with points, draw (admin), and check the draw."""

from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field

from patron.api.auth import AdminKey, ReadKey, RedeemKey
from patron.api.params import IdempotencyKey, answer_as_replay
from patron.api.problems import responses
from patron.api.runtime import RuntimeDep
from patron.domain.events import ExternalId
from patron.services import raffles
from patron.services.raffles import DrawAudit, EntryView, RaffleSpec, RaffleView

router = APIRouter(prefix="/v1/raffles", tags=["raffles"], responses=responses(401, 403))

RafflePath = Annotated[str, Path(min_length=1, max_length=64, description="the raffle's name")]


class EntryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: ExternalId
    entries: Annotated[int, Field(strict=True, gt=0, le=100_000, description="how many entries to buy")] = 1


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a raffle; its seed's SHA-256 is published now, the seed itself at the draw",
    responses=responses(409, 422),
)
def create(body: RaffleSpec, key: AdminKey, runtime: RuntimeDep) -> RaffleView:
    return raffles.create(
        runtime.database, runtime.cache, key.program_id, body, actor=f"api-key:{key.name}", now=runtime.now()
    )


@router.get("/{name}", summary="A raffle: its commitment, tickets sold, and after the draw the seed and winners")
def show(name: RafflePath, key: ReadKey, runtime: RuntimeDep) -> RaffleView:
    with runtime.database.read() as conn:
        return raffles.view(conn, key.program_id, name)


@router.post(
    "/{name}/entries",
    status_code=status.HTTP_201_CREATED,
    summary="Buy entries with points: 201 when bought now, 200 with the first reply when the Idempotency-Key repeats",
    description="409 after the draw time, beyond the member's maximum, or with too few points; nothing changes.",
    responses={200: {"model": EntryView, "description": "a retry"}, **responses(404, 409, 422)},
)
def enter(
    name: RafflePath,
    body: EntryRequest,
    key: RedeemKey,
    runtime: RuntimeDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> EntryView:
    view, replayed = raffles.enter(
        runtime.database,
        key.program_id,
        name,
        body.member_id,
        body.entries,
        now=runtime.now(),
        idempotency_key=idempotency_key,
    )
    answer_as_replay(response, replayed)
    return view


@router.post(
    "/{name}/draw",
    summary="Draw the winners (from the draw time on, once): reveals the seed",
    responses=responses(404, 409),
)
def draw(name: RafflePath, key: AdminKey, runtime: RuntimeDep) -> RaffleView:
    return raffles.draw(runtime.database, runtime.cache, key.program_id, name, now=runtime.now())


@router.get(
    "/{name}/verification",
    summary="Recompute the winners from the revealed seed and the entries, and compare",
    responses=responses(404, 409),
)
def verify(name: RafflePath, key: ReadKey, runtime: RuntimeDep) -> DrawAudit:
    with runtime.database.read() as conn:
        return raffles.audit(conn, key.program_id, name)
