"""The program as published versions: read them, check a document, publish a new version."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from patron.api.auth import AdminKey, ReadKey
from patron.api.problems import responses
from patron.api.runtime import RuntimeDep
from patron.api.text import RefuseNul
from patron.domain.program import ProgramDocument
from patron.services import programs
from patron.services.errors import Invalid, NotFound

router = APIRouter(prefix="/v1/program", tags=["program"], responses=responses(401, 403))


class VersionSummary(BaseModel):
    version: int
    effective_from: datetime
    published_at: datetime
    published_by: str


class VersionDetail(VersionSummary):
    document: ProgramDocument


class PublishRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document: ProgramDocument
    effective_from: AwareDatetime | None = Field(
        default=None, description="events that occurred from this moment on are judged by the version; default now"
    )


class Validity(BaseModel):
    valid: Literal[True]


def _detail(published: programs.PublishedVersion) -> VersionDetail:
    return VersionDetail(
        version=published.version,
        effective_from=published.effective_from,
        published_at=published.published_at,
        published_by=published.published_by,
        document=published.document,
    )


@router.get("/versions", summary="Every published version, oldest first")
def list_versions(key: ReadKey, runtime: RuntimeDep) -> list[VersionSummary]:
    with runtime.database.read() as conn:
        found = programs.list_versions(conn, key.program_id)
    return [VersionSummary(**_detail(v).model_dump(exclude={"document"})) for v in found]


@router.get("/versions/{version}", summary="One version with its document", responses=responses(404, 422))
def get_version(version: Annotated[int, Path(ge=1)], key: ReadKey, runtime: RuntimeDep) -> VersionDetail:
    with runtime.database.read() as conn:
        found = programs.list_versions(conn, key.program_id)
    for published in found:
        if published.version == version:
            return _detail(published)
    raise NotFound(f"no version {version} of this program", field="version")


@router.post(
    "/versions",
    status_code=status.HTTP_201_CREATED,
    summary="Publish a new version (admin)",
    description="An invalid document is a 422 whose errors name each field at fault, e.g. document.rules.0.when. "
    "Coupon batches and raffles the version declares that do not exist yet are made (codes generated, a raffle's "
    "seed drawn and its SHA-256 published); one that exists must keep its terms (a batch may raise its count), "
    "else a 422 names the field, e.g. document.raffles.0.entry_cost, and nothing is published.",
    responses=responses(422),
    dependencies=[RefuseNul],
)
def publish(body: PublishRequest, key: AdminKey, runtime: RuntimeDep) -> VersionDetail:
    try:
        published = programs.publish(
            runtime.database,
            key.program_id,
            body.document,
            actor=key.name,
            now=runtime.now(),
            effective_from=body.effective_from,
        )
    except Invalid as exc:
        # The service names the field in the document (raffles.0.draws_at); here the document is in the body.
        raise Invalid(exc.detail, field=None if exc.field is None else f"document.{exc.field}") from exc
    return _detail(published)


@router.post(
    "/validate",
    summary="Check a program document without publishing it",
    description="The body is the document itself; a 422 names each field at fault, e.g. rules.0.when.",
    responses=responses(422),
)
def validate(document: ProgramDocument, key: ReadKey) -> Validity:
    # FastAPI has validated the document (CEL expressions included) before this runs: reaching here means valid.
    del document, key
    return Validity(valid=True)
