"""RFC 9457 problem details: every error the API gives, whatever raised it, has the same JSON shape.

Field paths are dotted and relative to the request body ("lines.0.unit_price"), so a client can point at the
offending input. Nothing internal (exception text, SQL, stack) reaches a 500 response.
"""

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from patron.api.text import NUL_MESSAGE
from patron.services.errors import ServiceError
from patron.store.database import is_retryable

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("patron.api")


class FieldError(BaseModel):
    field: str | None  # None when the input as a whole is at fault (e.g. "give exactly one of amount or lines")
    message: str


class Problem(BaseModel):
    model_config = ConfigDict(json_schema_extra={"description": "RFC 9457 problem details"})

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] = []


def problem_type(slug: str) -> str:
    # A URN rather than a made-up web address: stable, unique, and it promises no page that does not exist.
    return f"urn:patron:problem:{slug}"


def problem_response(problem: Problem, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(mode="json"), status_code=problem.status, headers=headers, media_type=PROBLEM_JSON
    )


def _slug(error_class: type) -> str:
    name = error_class.__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def from_service_error(exc: ServiceError) -> Problem:
    return Problem(
        type=problem_type(_slug(type(exc))),
        title=exc.title,
        status=exc.status,
        detail=exc.detail,
        errors=[FieldError(field=exc.field, message=exc.detail)],
    )


def invalid(errors: Sequence[FieldError], detail: str | None = None) -> Problem:
    return Problem(
        type=problem_type("invalid"),  # the same type as the services' Invalid: one kind of problem
        title="Invalid request",
        status=422,
        detail=detail or "; ".join(f"{e.field or 'request'}: {e.message}" for e in errors),
        errors=list(errors),
    )


def field_errors(errors: Iterable[Mapping[str, Any]], data: Any) -> list[FieldError]:
    """Pydantic errors as field paths into `data` (the input that was validated), without duplicates."""
    found: dict[tuple[str | None, str], None] = {}
    for error in errors:
        path = _path(tuple(error["loc"]), data, str(error["type"]))
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # The discriminator itself is at fault; pydantic reports it at the union's own location.
            path.append(str(error.get("ctx", {}).get("discriminator", "type")).strip("'"))
        # "Value error, " is pydantic saying a validator raised ValueError: noise to a client.
        found[(".".join(path) or None, str(error["msg"]).removeprefix("Value error, "))] = None
    return [FieldError(field=field, message=message) for field, message in found]


def _path(loc: tuple[Any, ...], data: Any, error_type: str) -> list[str]:
    """The segments of `loc` that are fields of the input.

    Pydantic puts a label in the location for each union member it tried (a tag such as 'purchase', a class
    such as 'Fixed', a type such as 'str'); the client sent no such field, so walking the input tells them
    apart: a segment is kept when the input has it, or when it is the last one and names a missing field.
    """
    kept: list[str] = []
    for i, segment in enumerate(loc):
        if _has(data, segment):
            data = data[segment]
        elif not (i == len(loc) - 1 and error_type == "missing"):
            continue
        kept.append(str(segment))
    return kept


def _has(data: Any, segment: Any) -> bool:
    if isinstance(data, Mapping):
        return isinstance(segment, str) and segment in data
    return isinstance(data, list) and isinstance(segment, int) and 0 <= segment < len(data)


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return problem_response(from_service_error(exc), headers)


async def _request_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields: list[FieldError] = []
    detail = None
    for error in exc.errors():
        source, *loc = error["loc"]
        if source != "body":
            # Query, path and header parameters: the location is just the parameter's name.
            fields.append(FieldError(field=".".join(map(str, loc)), message=error["msg"]))
        elif error["type"] == "json_invalid":
            detail = "the body is not valid JSON"
            fields.append(FieldError(field=None, message=f"invalid JSON: {error.get('ctx', {}).get('error', '')}"))
        elif not loc and error["type"] == "missing":
            fields.append(FieldError(field=None, message="a JSON body is required"))
        elif not loc and isinstance(exc.body, bytes):
            detail = "the body must be JSON, sent with Content-Type: application/json"
            fields.append(FieldError(field=None, message=detail))
        else:
            fields.extend(field_errors([{**error, "loc": tuple(loc)}], exc.body))
    return problem_response(invalid(_unique(fields), detail))


def _unique(fields: Iterable[FieldError]) -> list[FieldError]:
    return list({(f.field, f.message): f for f in fields}.values())


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = HTTPStatus(exc.status_code)
    detail = str(exc.detail)
    if isinstance(exc.__cause__, ValueError) and "digits" in str(exc.__cause__):
        # FastAPI's reply when the JSON parser refuses an integer longer than Python converts (4300 digits).
        detail = "the body could not be read: a number in it has far too many digits"
    problem = Problem(type="about:blank", title=status.phrase, status=status.value, detail=detail)
    return problem_response(problem, exc.headers)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if "cannot contain NUL" in str(exc.orig):
        # PostgreSQL refusing a NUL the request carried somewhere no route checked (a path or query parameter):
        # the client's input, not our failure.
        return problem_response(invalid([FieldError(field=None, message=NUL_MESSAGE)], NUL_MESSAGE))
    if not is_retryable(exc):
        return await _unexpected(request, exc)
    # The service already retried the lost race several times; the client may safely retry the same request.
    problem = Problem(
        type=problem_type("busy"),
        title="Busy",
        status=503,
        detail="the database is busy with other changes to the same data; retry the request",
    )
    return problem_response(problem, {"Retry-After": "1"})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    problem = Problem(
        type="about:blank",
        title="Internal Server Error",
        status=500,
        detail="the server failed to handle this request; it has been logged",
    )
    return problem_response(problem)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)


# For the OpenAPI document: which problems a route can answer with.
def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": Problem, "description": HTTPStatus(status).phrase} for status in statuses}
