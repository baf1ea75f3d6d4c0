"""Webhooks against a real HTTP receiver on loopback, on SQLite and PostgreSQL: signed deliveries a Standard
Webhooks verifier accepts (and a tampered one it refuses), per-member order through retries, a 500, a timeout,
a closed port, dead letters, replay with the same webhook-id, and secret rotation."""

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook, WebhookVerificationError

from patron.domain.events import Purchase
from patron.services import adjustments, events
from patron.services.clock import utcnow
from patron.store.background import webhook_deliveries
from patron.webhooks import subscriptions
from patron.webhooks.delivery import WebhookConsumer, WebhookSender
from patron.worker import queue
from patron.worker.plugins import OutboxDispatch
from patron.worker.registry import JobKind, Registry
from patron.worker.runner import Worker
from patron.worker.settings import WorkerSettings
from tests.conftest import T0
from tests.helpers import set_up
from tests.integration.plain_program import plain_program
from tests.integration.webhook_receiver import Receiver, closed_port_url

ALL_POINTS = ["points.adjusted", "points.earned", "points.pending"]


def worker_settings(**overrides) -> WorkerSettings:
    values = {
        "webhook_timeout_seconds": 2.0,
        "webhook_retry_base_seconds": 0.0,  # retries due at once: the tests turn the pumps instead of waiting
        "webhook_max_attempts": 5,
        "webhook_concurrency": 4,
    } | overrides
    return WorkerSettings(**values)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def setup(db):
    return set_up(db, plain_program(pending_days=14), member_ids=("m1", "m2"), now=T0)


class Pumps:
    """The worker's two webhook pumps, turned by the test."""

    def __init__(self, db, settings: WorkerSettings) -> None:
        self.db = db
        self.dispatch = OutboxDispatch([WebhookConsumer()])
        self.sender = WebhookSender(settings, worker="test")

    def turn(self) -> int:
        return self.dispatch(self.db, utcnow()) + self.sender(self.db, utcnow())

    def until_idle(self, turns: int = 50) -> None:
        for _ in range(turns):
            if not self.turn():
                return
        pytest.fail("the pumps never ran out of work")

    def close(self) -> None:
        self.sender.close()


@pytest.fixture
def pumps(db):
    p = Pumps(db, worker_settings())
    yield p
    p.close()


def subscribe(db, program_id, url, types=ALL_POINTS):
    return db.run(lambda conn: subscriptions.create(conn, program_id, url, types, description="test", now=T0))


def adjust(setup, member, points, reason, at=T0):
    adjustments.adjust(setup.db, setup.cache, setup.program_id, member, points, reason, actor="test", now=at)


def deliveries(db):
    with db.read() as conn:
        return conn.execute(sa.select(webhook_deliveries).order_by(webhook_deliveries.c.id)).all()


def test_events_are_delivered_signed_and_a_verifier_accepts_them(db, setup, receiver, pumps):
    created = subscribe(db, setup.program_id, receiver.url)
    adjust(setup, "m1", 25, "goodwill")
    purchase = Purchase(event_id="e1", member_id="m2", occurred_at=T0, order_id="o1", total="30")
    events.ingest(db, setup.cache, setup.program_id, purchase, now=T0)
    pumps.until_idle()

    verifier = Webhook(created.secret)
    # Two members: their deliveries may go out side by side, in either order.
    payloads = sorted(
        (verifier.verify(r.body, r.headers) for r in receiver.delivered()), key=lambda p: p["data"]["member_id"]
    )
    assert [(p["type"], p["data"]["member_id"], p["data"]["points"]) for p in payloads] == [
        ("points.adjusted", "m1", 25),
        ("points.pending", "m2", 30),
    ]
    assert payloads[0]["data"]["reason"] == "goodwill"
    assert payloads[0]["data"]["program"] == "test"
    assert payloads[1]["data"]["event_id"] == "e1"
    assert {d.status for d in deliveries(db)} == {"delivered"}
    assert len({r.message_id for r in receiver.delivered()}) == 2


def test_a_tampered_message_is_refused_by_the_verifier(db, setup, receiver, pumps):
    created = subscribe(db, setup.program_id, receiver.url)
    adjust(setup, "m1", 25, "goodwill")
    pumps.until_idle()
    (good,) = receiver.delivered()
    verifier = Webhook(created.secret)
    verifier.verify(good.body, good.headers)

    with pytest.raises(WebhookVerificationError):
        verifier.verify(good.body.replace("25", "2500"), good.headers)
    with pytest.raises(WebhookVerificationError):
        verifier.verify(good.body, good.headers | {"webhook-id": "msg_forged"})
    with pytest.raises(WebhookVerificationError):
        verifier.verify(
            good.body, good.headers | {"webhook-signature": "v1,AAAA" + good.headers["webhook-signature"][7:]}
        )
    with pytest.raises(WebhookVerificationError):
        Webhook(subscribe(db, setup.program_id, receiver.url).secret).verify(good.body, good.headers)


def test_a_members_events_arrive_in_order_through_a_500_and_its_retry(db, setup, pumps):
    failed_once: set[str] = set()

    def first_m1_attempt_fails(request, _n):
        data = request.payload["data"]
        if data["member_id"] == "m1" and data["reason"] == "first" and "first" not in failed_once:
            failed_once.add("first")
            return 500, 0.0
        return 200, 0.0

    receiver = Receiver(first_m1_attempt_fails)
    try:
        subscribe(db, setup.program_id, receiver.url)
        for reason in ("first", "second", "third"):
            adjust(setup, "m1", 10, reason)
            adjust(setup, "m2", 10, reason)
        pumps.until_idle()
        arrivals = [(r.payload["data"]["member_id"], r.payload["data"]["reason"]) for r in receiver.received]
        delivered = [(r.payload["data"]["member_id"], r.payload["data"]["reason"]) for r in receiver.delivered()]
    finally:
        receiver.close()
    m1_arrivals = [reason for member, reason in arrivals if member == "m1"]
    assert m1_arrivals == ["first", "first", "second", "third"], "nothing of m1 overtook the retried message"
    assert [reason for member, reason in delivered if member == "m1"] == ["first", "second", "third"]
    assert [reason for member, reason in delivered if member == "m2"] == ["first", "second", "third"]
    retried = [d for d in deliveries(db) if d.attempts == 2]
    assert len(retried) == 1
    assert retried[0].last_status == 200


def test_a_failure_waits_with_exponential_backoff(db, setup):
    receiver = Receiver(lambda _r, _n: (500, 0.0))
    settings = worker_settings(webhook_retry_base_seconds=60, webhook_retry_max_seconds=3600)
    pumps = Pumps(db, settings)
    try:
        subscribe(db, setup.program_id, receiver.url)
        adjust(setup, "m1", 10, "x")
        before = utcnow()
        pumps.until_idle()
        (delivery,) = deliveries(db)
        assert delivery.status == "pending"
        assert delivery.attempts == 1
        assert delivery.last_status == 500
        assert "HTTP 500" in delivery.last_error
        assert timedelta(seconds=30) <= delivery.next_attempt_at - before <= timedelta(seconds=61)
        assert len(receiver.received) == 1, "not tried again before its time"
    finally:
        pumps.close()
        receiver.close()


def test_a_receiver_that_does_not_answer_in_time_gets_the_message_again(db, setup):
    receiver = Receiver(lambda _r, n: (200, 1.5 if n == 0 else 0.0))
    pumps = Pumps(db, worker_settings(webhook_timeout_seconds=0.5))
    try:
        subscribe(db, setup.program_id, receiver.url)
        adjust(setup, "m1", 10, "slow")
        pumps.turn()
        (delivery,) = deliveries(db)
        assert delivery.status == "pending"
        assert delivery.last_error == "no answer within 0.5 s"
        pumps.until_idle()
        (delivery,) = deliveries(db)
        assert delivery.status == "delivered"
        assert delivery.attempts == 2
        first, second = receiver.received
        assert first.message_id == second.message_id, "the same webhook-id: the receiver can drop the duplicate"
        assert first.body == second.body
    finally:
        pumps.close()
        receiver.close()


def test_a_closed_port_ends_dead_and_a_replay_delivers_with_the_same_webhook_id(db, setup):
    pumps = Pumps(db, worker_settings(webhook_max_attempts=3))
    receiver = Receiver()
    try:
        created = subscribe(db, setup.program_id, closed_port_url())
        adjust(setup, "m1", 10, "nobody home")
        adjust(setup, "m1", 5, "after it")
        pumps.until_idle()
        first, second = deliveries(db)
        assert (first.status, first.attempts) == ("dead", 3)
        assert "ConnectError" in first.last_error
        # A dead delivery no longer holds back the member's later ones: they fail (and die) on their own.
        assert (second.status, second.attempts) == ("dead", 3)

        with db.read() as conn:
            listed = subscriptions.deliveries(conn, setup.program_id, status=subscriptions.DeliveryStatus.DEAD)
        assert len(listed) == 2
        dead_ids = {d.message_id for d in listed}

        # The merchant fixes the endpoint (the test points the subscription at a live receiver) and replays.
        with db.write() as conn:
            conn.execute(
                sa.update(subscriptions.webhook_subscriptions)
                .where(subscriptions.webhook_subscriptions.c.id == created.subscription.id)
                .values(url=receiver.url)
            )
        assert (
            db.run(lambda conn: subscriptions.replay_dead(conn, setup.program_id, created.subscription.id, now=T0)) == 2
        )
        pumps.until_idle()
        assert {r.message_id for r in receiver.delivered()} == dead_ids
        assert [r.payload["data"]["reason"] for r in receiver.delivered()] == ["nobody home", "after it"]
        for r in receiver.delivered():
            Webhook(created.secret).verify(r.body, r.headers)

        # A delivered message replayed once more: same id and body, a fresh signature that still verifies.
        delivered_id = deliveries(db)[0].id
        db.run(lambda conn: subscriptions.replay(conn, setup.program_id, delivered_id, now=T0))
        pumps.until_idle()
        again = receiver.delivered()[-1]
        assert again.message_id == receiver.delivered()[0].message_id
        assert again.body == receiver.delivered()[0].body
        Webhook(created.secret).verify(again.body, again.headers)
    finally:
        pumps.close()
        receiver.close()


def test_after_a_rotation_both_secrets_verify_until_the_grace_period_ends(db, setup, receiver, pumps):
    created = subscribe(db, setup.program_id, receiver.url)
    rotated = db.run(
        lambda conn: subscriptions.rotate(
            conn, setup.program_id, created.subscription.id, now=utcnow(), grace=timedelta(hours=1)
        )
    )
    assert rotated.secret != created.secret
    adjust(setup, "m1", 10, "rotated")
    pumps.until_idle()
    (message,) = receiver.delivered()
    Webhook(created.secret).verify(message.body, message.headers)
    Webhook(rotated.secret).verify(message.body, message.headers)

    db.run(
        lambda conn: subscriptions.rotate(
            conn, setup.program_id, created.subscription.id, now=utcnow(), grace=timedelta(0)
        )
    )
    adjust(setup, "m1", 10, "grace over")
    pumps.until_idle()
    latest = receiver.delivered()[-1]
    with pytest.raises(WebhookVerificationError):
        Webhook(rotated.secret).verify(latest.body, latest.headers)


def test_only_subscribed_types_of_live_subscriptions_are_delivered(db, setup, receiver, pumps):
    pending_only = subscribe(db, setup.program_id, receiver.url, ["points.pending"])
    disabled = subscribe(db, setup.program_id, receiver.url, ["points.adjusted"])
    db.run(lambda conn: subscriptions.disable(conn, setup.program_id, disabled.subscription.id, now=T0))
    adjust(setup, "m1", 10, "not subscribed")
    purchase = Purchase(event_id="e1", member_id="m1", occurred_at=T0, order_id="o1", total="12")
    events.ingest(db, setup.cache, setup.program_id, purchase, now=T0)
    pumps.until_idle()
    assert [r.payload["type"] for r in receiver.delivered()] == ["points.pending"]
    assert {d.subscription_id for d in deliveries(db)} == {pending_only.subscription.id}


def test_webhooks_go_out_while_a_long_job_runs(db, setup, receiver):
    subscribe(db, setup.program_id, receiver.url)
    adjust(setup, "m1", 10, "during the job")
    arrived = threading.Event()

    def long_job(ctx):
        # Holds the job thread until the delivery arrives: only a separate pump thread can make it arrive.
        if not arrived.wait(20):
            raise RuntimeError("no webhook went out while the job ran")
        return {}

    def last_run():
        with db.read() as conn:
            runs = queue.history(conn, kind="long")
        return runs[0] if runs else None

    settings = worker_settings(worker_poll_seconds=0.05)
    registry = Registry()
    registry.add_kind(JobKind("long", long_job, "test"))
    registry.add_pump(OutboxDispatch([WebhookConsumer()]))
    sender = WebhookSender(settings, worker="w")
    registry.add_pump(sender)
    with db.write() as conn:
        queue.enqueue(conn, "long", "k", now=T0)
    worker = Worker(db, registry, settings, name="w")
    running = threading.Thread(target=worker.run)
    running.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not arrived.is_set():
            if receiver.delivered():
                arrived.set()
            time.sleep(0.05)
        while time.monotonic() < deadline and (last_run() is None or last_run().outcome == "running"):
            time.sleep(0.05)
    finally:
        worker.stopping.set()
        arrived.set()
        running.join(30)
        sender.close()
    assert last_run().outcome == "succeeded"


def test_two_workers_sending_at_once_keep_each_members_order_and_send_each_message_once(db, receiver):
    setup = set_up(db, plain_program(), member_ids=tuple(f"m{i}" for i in range(5)), now=T0)
    subscribe(db, setup.program_id, receiver.url)
    for n in range(6):
        for i in range(5):
            adjust(setup, f"m{i}", 1, f"r{n}")
    workers = [Pumps(db, worker_settings(webhook_batch=3)) for _ in range(2)]
    barrier = threading.Barrier(2)

    def drain(pumps):
        barrier.wait()
        idle = 0
        while idle < 5:  # the other worker may still hold a member's earlier message: look again a few times
            idle = 0 if pumps.turn() else idle + 1
            time.sleep(0.01)

    threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for w in workers:
            w.close()
    delivered = receiver.delivered()
    assert len(delivered) == 30
    assert len({r.message_id for r in delivered}) == 30, "no message sent twice"
    for i in range(5):
        reasons = [r.payload["data"]["reason"] for r in receiver.received if r.payload["data"]["member_id"] == f"m{i}"]
        assert reasons == [f"r{n}" for n in range(6)], f"m{i} in order"
