"""Configuration from the environment (PATRON_*) or a .env file; nothing secret is ever logged."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PATRON_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///patron.db"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    pool_size: int = 20
