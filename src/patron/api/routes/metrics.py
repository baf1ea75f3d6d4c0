"""Prometheus metrics (no API key, like /health: keep the port off the public internet or filter the path)."""

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.concurrency import run_in_threadpool

from patron.api.runtime import RuntimeDep
from patron.observability.metrics import database_registry

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics: ingestion, jobs, the outbox and webhook deliveries",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "the text exposition format"}},
)
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    registry = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        registry = request.app.state.metrics_registry = database_registry(runtime.database)
    body = generate_latest(REGISTRY) + await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
