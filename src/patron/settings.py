"""Configuration from the environment (PATRON_*) or a .env file; nothing secret is ever logged."""

from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PATRON_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///patron.db"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    pool_size: int = 20
    # Single events (POST /v1/events) arriving while another's transaction is in flight share the next one, up to
    # group_commit_max_batch; 0/false: one transaction per request.
    group_commit: bool = True
    group_commit_max_batch: int = 256
    # After answering several events, a transaction waits for their senders' next ones while they keep coming, each
    # within this many milliseconds of the last (patron.api.group_commit); 0: never waits.
    group_commit_linger_ms: float = 1.0
    # json: one object per line for a log collector; console: readable lines for a person at a terminal.
    log_format: Literal["json", "console"] = "json"

    # Email (patron.mail). No SMTP host: mail is queued but not sent.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = 10.0
    mail_from: str = "Patron <loyalty@localhost>"
    mail_max_attempts: int = 8
    # Where members reach this server: unsubscribe links point here.
    public_url: str = "http://127.0.0.1:8000"
    # Signs unsubscribe links; changing it makes links already sent stop working.
    secret_key: SecretStr | None = None
