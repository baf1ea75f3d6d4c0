"""Webhook subscriptions of the key's program (admin): create, list, rotate, disable; deliveries and replay."""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from patron.api.auth import AdminKey
from patron.api.problems import responses
from patron.api.runtime import RuntimeDep
from patron.services.outbox import EventType
from patron.webhooks import subscriptions
from patron.webhooks.subscriptions import Delivery, DeliveryStatus, Subscription, SubscriptionWithSecret
from patron.worker.settings import WorkerSettings

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=responses(401, 403))

SubscriptionId = Annotated[int, Path(ge=1, description="the subscription's id")]


class NewSubscription(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(min_length=1, max_length=2048, description="where events are POSTed (http or https)")]
    event_types: Annotated[list[EventType], Field(min_length=1, description="the event types to receive")]
    description: Annotated[str, Field(max_length=255)] = ""


class Replayed(BaseModel):
    replayed: int


@router.get("/event-types", summary="Every event type a subscription can name")
def event_types(key: AdminKey) -> list[str]:
    return [t.value for t in EventType]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe an endpoint; the reply holds its signing secret, shown this once",
    responses=responses(422),
)
def create(body: NewSubscription, key: AdminKey, runtime: RuntimeDep) -> SubscriptionWithSecret:
    return runtime.database.run(
        lambda conn: subscriptions.create(
            conn,
            key.program_id,
            body.url,
            [t.value for t in body.event_types],
            description=body.description,
            now=runtime.now(),
        )
    )


@router.get("", summary="The program's subscriptions (without secrets)")
def list_subscriptions(key: AdminKey, runtime: RuntimeDep) -> list[Subscription]:
    with runtime.database.read() as conn:
        return subscriptions.list_all(conn, key.program_id)


@router.post(
    "/{subscription_id}/rotate",
    summary="A new signing secret, shown this once; the old one also signs for a grace period",
    responses=responses(404),
)
def rotate(subscription_id: SubscriptionId, key: AdminKey, runtime: RuntimeDep) -> SubscriptionWithSecret:
    grace = timedelta(hours=WorkerSettings().webhook_rotation_grace_hours)
    return runtime.database.run(
        lambda conn: subscriptions.rotate(conn, key.program_id, subscription_id, now=runtime.now(), grace=grace)
    )


@router.delete("/{subscription_id}", summary="Stop delivering to the subscription", responses=responses(404))
def disable(subscription_id: SubscriptionId, key: AdminKey, runtime: RuntimeDep) -> Subscription:
    return runtime.database.run(
        lambda conn: subscriptions.disable(conn, key.program_id, subscription_id, now=runtime.now())
    )


@router.get("/deliveries", summary="The latest deliveries, newest first")
def deliveries(
    key: AdminKey,
    runtime: RuntimeDep,
    subscription_id: Annotated[int | None, Query(ge=1)] = None,
    delivery_status: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[Delivery]:
    with runtime.database.read() as conn:
        return subscriptions.deliveries(
            conn, key.program_id, subscription_id=subscription_id, status=delivery_status, limit=limit
        )


@router.post(
    "/deliveries/{delivery_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a delivery again: same webhook-id and body, fresh timestamp and signature",
    responses=responses(404),
)
def replay(delivery_id: Annotated[int, Path(ge=1)], key: AdminKey, runtime: RuntimeDep) -> Delivery:
    return runtime.database.run(lambda conn: subscriptions.replay(conn, key.program_id, delivery_id, now=runtime.now()))


@router.post(
    "/{subscription_id}/replay-dead",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send every dead delivery of the subscription again",
    responses=responses(404),
)
def replay_dead(subscription_id: SubscriptionId, key: AdminKey, runtime: RuntimeDep) -> Replayed:
    count = runtime.database.run(
        lambda conn: subscriptions.replay_dead(conn, key.program_id, subscription_id, now=runtime.now())
    )
    return Replayed(replayed=count)
