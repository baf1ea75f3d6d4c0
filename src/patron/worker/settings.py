"""The worker's knobs, read from PATRON_* like the rest of the settings."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PATRON_", env_file=".env", extra="ignore")

    worker_poll_seconds: float = Field(1.0, gt=0, description="how long an idle worker waits before looking again")
    job_lease_seconds: float = Field(
        60.0, gt=0, description="a job whose worker sends no heartbeat for this long is taken over by another"
    )
    job_max_attempts: int = Field(5, ge=1)
    job_retry_base_seconds: float = Field(10.0, ge=0)
    job_retry_max_seconds: float = Field(3600.0, ge=0)
    job_chunk: int = Field(10_000, ge=1, description="lots per transaction in the expiry and activation jobs")
    # On SQLite every chunk holds the only write lock: a pause lets the API's writers in between chunks.
    job_chunk_pause_seconds: float = Field(0.0, ge=0)
    reminder_days: int = Field(14, ge=1, description="points.expiring_soon goes out this many days ahead")
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    webhook_max_attempts: int = Field(8, ge=1, description="failed attempts before a delivery is dead-lettered")
    webhook_retry_base_seconds: float = Field(30.0, ge=0)
    webhook_retry_max_seconds: float = Field(6 * 3600.0, ge=0)
    webhook_batch: int = Field(50, ge=1)
    webhook_concurrency: int = Field(4, ge=1)
    background_retention_days: int = Field(
        30, ge=1, description="delivered webhooks, dispatched outbox messages and finished jobs are kept this long"
    )
    webhook_rotation_grace_hours: float = Field(
        24.0, ge=0, description="after a rotation, deliveries are signed with the old secret too for this long"
    )
