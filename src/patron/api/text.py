"""Text that cannot be stored alike everywhere is refused: NUL (U+0000) in any string of a request body.

PostgreSQL text columns cannot hold NUL at all (the insert fails) while SQLite and JSON columns keep it; refusing it
at the door keeps the two backends answering alike and turns what would be a 500 into a 422 naming the field.
"""

import json
from collections.abc import Iterator
from typing import Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError

# JSON carries NUL only escaped (a raw control character is not valid JSON), so one scan of the bytes clears
# almost every body; only one containing the escape is parsed to find where it is.
_ESCAPED_NUL = b"\\u0000"
NUL_MESSAGE = "text may not contain the NUL character (\\u0000)"


def nul_errors(data: Any) -> list[dict[str, Any]]:
    """Validation errors (pydantic's shape) for each string, or object key, in `data` that holds a NUL."""
    return [{"type": "string_nul", "loc": loc, "msg": NUL_MESSAGE, "input": None} for loc in _nul_locations(data)]


async def _refuse_nul(request: Request) -> None:
    body = await request.body()
    if _ESCAPED_NUL not in body:
        return
    try:
        data = json.loads(body)
    except ValueError:
        return  # not JSON: the route's own parsing reports that
    errors = nul_errors(data)
    if errors:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors], body=data)


# For the `dependencies` of every route whose body is written to the database.
RefuseNul = Depends(_refuse_nul)


def _nul_locations(data: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if isinstance(data, str):
        if "\x00" in data:
            yield loc
    elif isinstance(data, dict):
        for key, value in data.items():
            if "\x00" in key:
                yield (*loc, key)
            yield from _nul_locations(value, (*loc, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _nul_locations(item, (*loc, index))
