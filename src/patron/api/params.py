"""Path, query and header parameters shared by several routes."""

from typing import Annotated

from fastapi import Header, Path, Query, Response, status

from patron.domain.events import ExternalId

MemberIdPath = Annotated[ExternalId, Path(description="the merchant's own id for the member")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="the next_cursor of the previous page; omit for the first")
]
Limit = Annotated[int, Query(ge=1, le=200, description="how many items per page")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="a retry with the same key and body gets the first reply; another body, 409",
    ),
]

# Stripe's name for the header that tells a client it got the stored reply to an earlier request.
REPLAYED_HEADER = "Idempotent-Replayed"


def answer_as_replay(response: Response, replayed: bool) -> None:
    """A retry with a known Idempotency-Key gets 200 and the header instead of the route's 201."""
    if replayed:
        response.status_code = status.HTTP_200_OK
        response.headers[REPLAYED_HEADER] = "true"
