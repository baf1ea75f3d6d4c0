"""Counts every HTTP request by route template (not the raw path: member ids would make a series each), and
single events by how their ingestion ended. Batches count their events themselves (one request, many events)."""

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from patron.observability import metrics

_SINGLE_EVENT = "/v1/events"


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before answering

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", "unmatched")
            metrics.http_requests.labels(method=scope["method"], route=template, status=str(status)).inc()
            is_dry_run = b"dry_run=true" in scope.get("query_string", b"")
            if scope["method"] == "POST" and template == _SINGLE_EVENT and not is_dry_run:
                metrics.count_ingested([status])
