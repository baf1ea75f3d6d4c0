"""The worker's registry as Patron ships it. Features plug in here, in one place:

- a periodic or one-off job: `registry.add_kind(JobKind(name, handler, description, Schedule(every)))`;
  enqueue one-off jobs from any transaction with `patron.worker.queue.enqueue(conn, kind, key, now=...)`;
- an outbox consumer (e.g. mail): `registry.add_consumer(consumer)`; it gets every committed outbox message,
  in order, inside the dispatch transaction, and writes its own rows there (its outbox, its jobs);
- a pump (e.g. sending the mail those rows describe): `registry.add_pump(pump)`, called on every turn.
"""

from datetime import datetime

from patron.mail import worker as mail_worker
from patron.observability import metrics
from patron.services import outbox
from patron.services.outbox import OutboxConsumer
from patron.store.database import Database
from patron.webhooks.delivery import WebhookConsumer, WebhookSender
from patron.worker import campaign_jobs, housekeeping, ledger_jobs, loyalty_jobs
from patron.worker.registry import Registry
from patron.worker.settings import WorkerSettings


class OutboxDispatch:
    """Hands committed outbox messages to the registry's consumers, in batches."""

    name = "outbox"

    def __init__(self, consumers: list[OutboxConsumer]) -> None:
        self.consumers = consumers  # the registry's own list: consumers added later are served too

    def __call__(self, db: Database, now: datetime) -> int:
        dispatched = outbox.dispatch(db, self.consumers, now=now)
        metrics.outbox_dispatched.inc(dispatched)
        return dispatched


def default_registry(settings: WorkerSettings, *, worker: str) -> Registry:
    registry = Registry()
    for kind in (
        ledger_jobs.ACTIVATE,
        ledger_jobs.EXPIRE,
        ledger_jobs.REMIND,
        loyalty_jobs.OCCASIONS,
        loyalty_jobs.TIER_REVIEW,
        campaign_jobs.OFFER_TO_LAPSED,
        housekeeping.PRUNE,
    ):
        registry.add_kind(kind)
    registry.add_consumer(WebhookConsumer())
    # Dispatch first: a message committed a moment ago is delivered in the same turn.
    registry.add_pump(OutboxDispatch(registry.consumers))
    registry.add_pump(WebhookSender(settings, worker=worker))
    mail_worker.register(registry)  # after dispatch: mail queued in this turn is sent in it
    return registry
