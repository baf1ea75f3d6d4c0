"""Enrolling members and reading their points."""

from fastapi import APIRouter, Response, status

from patron.api.auth import EventsKey, ReadKey
from patron.api.params import Cursor, Limit, MemberIdPath
from patron.api.problems import responses
from patron.api.runtime import RuntimeDep
from patron.api.text import RefuseNul
from patron.domain.members import MemberProfile
from patron.services import members
from patron.services.views import HistoryPage, LotView, MemberPage, MemberView

router = APIRouter(prefix="/v1/members", tags=["members"], responses=responses(401, 403))


@router.put(
    "/{member_id}",
    status_code=status.HTTP_201_CREATED,
    summary="Enrol a member (201) or replace their profile (200)",
    description="Needs the events scope: the integration that reports events also enrols the members they name. "
    "Balances and tiers are not part of a profile and are refused.",
    responses={200: {"model": MemberView, "description": "the profile was replaced"}, **responses(422)},
    dependencies=[RefuseNul],
)
def put_member(
    member_id: MemberIdPath, profile: MemberProfile, key: EventsKey, runtime: RuntimeDep, response: Response
) -> MemberView:
    view, created = members.upsert(runtime.database, key.program_id, member_id, profile, now=runtime.now())
    if not created:
        response.status_code = status.HTTP_200_OK
    return view


@router.get(
    "/{member_id}", summary="A member with balances and the points expiring within 30 days", responses=responses(404)
)
def get_member(member_id: MemberIdPath, key: ReadKey, runtime: RuntimeDep) -> MemberView:
    with runtime.database.read() as conn:
        return members.view(conn, key.program_id, member_id, now=runtime.now())


@router.get("", summary="Members, a page at a time", responses=responses(422))
def list_members(key: ReadKey, runtime: RuntimeDep, cursor: Cursor = None, limit: Limit = 50) -> MemberPage:
    with runtime.database.read() as conn:
        return members.page(conn, key.program_id, cursor=cursor, limit=limit, now=runtime.now())


@router.get(
    "/{member_id}/lots", summary="A member's open lots (points not yet spent or expired)", responses=responses(404)
)
def get_lots(member_id: MemberIdPath, key: ReadKey, runtime: RuntimeDep) -> list[LotView]:
    with runtime.database.read() as conn:
        return members.open_lots(conn, key.program_id, member_id)


@router.get("/{member_id}/history", summary="A member's journal, newest first", responses=responses(404, 422))
def get_history(
    member_id: MemberIdPath, key: ReadKey, runtime: RuntimeDep, cursor: Cursor = None, limit: Limit = 50
) -> HistoryPage:
    with runtime.database.read() as conn:
        return members.history(conn, key.program_id, member_id, cursor=cursor, limit=limit)
