"""Tables of the work done after commit: the job queue and its runs, the outbox, webhook subscriptions and
deliveries. They share the schema's metadata (patron.store.tables); the migration env imports this module."""

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint

from patron.store.tables import metadata
from patron.store.types import Id, UtcDateTime

# A job runs at most once per (kind, key): a periodic job's key is its period, so a restart or a second worker
# scheduling the same period inserts nothing. `lease_until` is how the job of a crashed worker is found again.
jobs = Table(
    "jobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("key", String(255), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("run_at", UtcDateTime, nullable=False),
    Column("lease_until", UtcDateTime),
    Column("locked_by", String(64)),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    UniqueConstraint("kind", "key"),
    Index(None, "status", "run_at"),
)

# One row per attempt, kept: what ran, where, how long, and how it ended (a crashed run ends "abandoned").
job_runs = Table(
    "job_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_id", ForeignKey("jobs.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("worker", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("result", JSON),
    Column("error", Text),
    Index(None, "job_id"),
    Index(None, "started_at"),
)

# Domain events, written in the transaction of the change that caused them and fanned out to consumers
# (webhooks, mail) after commit. `dedupe_key` makes an event that a schedule may find twice (a reminder for one
# lot date) exist once.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", String(40), nullable=False, unique=True),
    Column("program_id", Id, nullable=False),  # no FK: see migration 0009
    Column("member_id", ForeignKey("members.id")),
    Column("type", String(64), nullable=False),
    Column("data", JSON, nullable=False),
    Column("dedupe_key", String(160)),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("dispatched_at", UtcDateTime),
    UniqueConstraint("program_id", "dedupe_key"),
    Index(None, "dispatched_at", "id"),
)

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("event_types", JSON, nullable=False),
    Column("description", String(255), nullable=False),
    # Kept in the clear because every delivery is signed with it; only create and rotate ever show it.
    Column("secret", String(64), nullable=False),
    # After a rotation deliveries carry signatures by both secrets until this passes, so receivers can switch.
    Column("previous_secret", String(64)),
    Column("previous_secret_until", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("disabled_at", UtcDateTime),
    Index(None, "program_id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("subscription_id", ForeignKey("webhook_subscriptions.id"), nullable=False),
    Column("outbox_id", ForeignKey("outbox.id"), nullable=False),
    # Copied from the outbox row: deliveries of one member to one endpoint go out one at a time, in order.
    Column("member_id", ForeignKey("members.id")),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("lease_until", UtcDateTime),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime),
    UniqueConstraint("subscription_id", "outbox_id"),
    Index(None, "status", "next_attempt_at"),
    Index(None, "subscription_id", "member_id", "status"),
)
