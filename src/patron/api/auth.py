"""API keys as bearer tokens. A key belongs to one program: every route sees that program's data only."""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from patron.api.runtime import RuntimeDep
from patron.services import keys
from patron.services.errors import ServiceError
from patron.services.keys import ApiKey, Scope
from patron.store.database import Database


class Unauthorized(ServiceError):
    status = 401
    title = "Unauthorized"


class Forbidden(ServiceError):
    status = 403
    title = "Forbidden"


# auto_error=False: a missing or malformed header must become our 401 problem, not FastAPI's own reply.
_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer ptn_...`")


# The dependencies here are coroutines: a synchronous one costs a hop to the thread pool and back, and a key
# verified lately (keys.verified) needs no database at all.
async def _api_key(
    runtime: RuntimeDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> ApiKey:
    if credentials is None:
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>'", field="Authorization")
    token = credentials.credentials
    key = keys.verified.get(token) or await run_in_threadpool(_authenticate, runtime.database, token)
    if key is None:
        # One answer for unknown, malformed and revoked keys: nothing to learn about which keys exist.
        raise Unauthorized("the API key is not valid", field="Authorization")
    return key


def _authenticate(database: Database, token: str) -> ApiKey | None:
    with database.read() as conn:
        key = keys.authenticate(conn, token)
    if key is not None:
        keys.verified.keep(token, key)
    return key


def _requiring(scope: Scope) -> Callable[[ApiKey], Coroutine[Any, Any, ApiKey]]:
    async def check(key: Annotated[ApiKey, Depends(_api_key)]) -> ApiKey:
        if not key.allows(scope):
            raise Forbidden(f"this API key lacks the '{scope.value}' scope", field="Authorization")
        return key

    return check


ReadKey = Annotated[ApiKey, Depends(_requiring(Scope.READ))]
EventsKey = Annotated[ApiKey, Depends(_requiring(Scope.EVENTS))]
RedeemKey = Annotated[ApiKey, Depends(_requiring(Scope.REDEEM))]
AdminKey = Annotated[ApiKey, Depends(_requiring(Scope.ADMIN))]
