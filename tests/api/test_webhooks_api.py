"""/v1/webhooks (admin): the secret shown once, rotation, tenants kept apart, deliveries and replay; /metrics."""

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from patron.store.background import webhook_deliveries
from patron.webhooks.delivery import WebhookConsumer
from patron.worker.plugins import OutboxDispatch
from tests.api.conftest import assert_problem

HOOK = {"url": "https://example.com/hooks", "event_types": ["points.adjusted", "points.earned"]}


def test_a_subscription_shows_its_secret_once(api):
    created = api.post("/v1/webhooks", json=HOOK | {"description": "crm"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["subscription"]["event_types"] == ["points.adjusted", "points.earned"]
    listed = api.get("/v1/webhooks")
    assert listed.status_code == 200
    assert [s["id"] for s in listed.json()] == [body["subscription"]["id"]]
    assert body["secret"] not in listed.text

    rotated = api.post(f"/v1/webhooks/{body['subscription']['id']}/rotate")
    assert rotated.status_code == 200
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != body["secret"]


def test_bad_subscriptions_are_refused(api):
    assert_problem(api.post("/v1/webhooks", json=HOOK | {"url": "ftp://example.com"}), 422, "url")
    assert_problem(api.post("/v1/webhooks", json=HOOK | {"event_types": ["points.stolen"]}), 422)
    assert_problem(api.post("/v1/webhooks", json=HOOK | {"event_types": []}), 422)
    assert_problem(api.post("/v1/webhooks", json=HOOK | {"secret": "mine"}), 422)
    assert api.post("/v1/webhooks", key="events", json=HOOK).status_code == 403
    assert api.get("/v1/webhooks", key="read").status_code == 403


def test_another_tenants_subscriptions_and_deliveries_are_not_found(api):
    theirs = api.post("/v1/webhooks", key="other", json=HOOK).json()["subscription"]["id"]
    assert api.get("/v1/webhooks").json() == []
    assert_problem(api.post(f"/v1/webhooks/{theirs}/rotate"), 404)
    assert_problem(api.client.delete(f"/v1/webhooks/{theirs}", headers=api.auth()), 404)


def test_deliveries_are_listed_and_replayed(api):
    hook = api.post("/v1/webhooks", json=HOOK).json()["subscription"]["id"]
    api.fund("m1", 40)
    OutboxDispatch([WebhookConsumer()])(api.db, api.clock())
    listed = api.get("/v1/webhooks/deliveries", params={"subscription_id": hook})
    assert listed.status_code == 200
    (delivery,) = listed.json()
    assert (delivery["type"], delivery["member_id"], delivery["status"]) == ("points.adjusted", "m1", "pending")

    with api.db.write() as conn:
        conn.execute(sa.update(webhook_deliveries).values(status="dead", attempts=8))
    assert [d["id"] for d in api.get("/v1/webhooks/deliveries", params={"status": "dead"}).json()] == [delivery["id"]]
    replayed = api.post(f"/v1/webhooks/deliveries/{delivery['id']}/replay")
    assert replayed.status_code == 202
    assert (replayed.json()["status"], replayed.json()["attempts"]) == ("pending", 0)
    assert replayed.json()["message_id"] == delivery["message_id"]
    assert_problem(api.post("/v1/webhooks/deliveries/999/replay"), 404)
    assert api.post(f"/v1/webhooks/deliveries/{delivery['id']}/replay", key="other").status_code == 404

    disabled = api.client.delete(f"/v1/webhooks/{hook}", headers=api.auth())
    assert disabled.status_code == 200
    assert disabled.json()["disabled_at"] is not None


def _samples(text):
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_ingestion_and_show_the_queues(api):
    before = _samples(api.client.get("/metrics").text)
    event = {
        "event_id": "e1",
        "member_id": "m1",
        "type": "purchase",
        "occurred_at": "2026-01-05T10:00:00Z",
        "order_id": "o1",
        "total": "12.00",
    }
    assert api.post("/v1/events", key="events", json=event).status_code == 201
    assert api.post("/v1/events", key="events", json=event).status_code == 200
    assert api.post("/v1/events", key="events", json=event | {"total": "13.00"}).status_code == 409
    batch = [event | {"event_id": "e2", "order_id": "o2"}, event | {"event_id": "e3", "member_id": "nobody"}]
    assert api.post("/v1/events/batch", key="events", json={"events": batch}).status_code == 200

    reply = api.client.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    after = _samples(reply.text)

    def grew(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("patron_events_ingested_total", outcome="processed") == 2
    assert grew("patron_events_ingested_total", outcome="replayed") == 1
    assert grew("patron_events_ingested_total", outcome="rejected") == 2
    assert grew("patron_http_requests_total", method="POST", route="/v1/events", status="201") == 1
    # Read from the database: the program's publish and the two purchases wait in the outbox (no worker runs).
    assert after[("patron_outbox_backlog", ())] >= 3
