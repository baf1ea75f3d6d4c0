"""Brings a database's schema to the newest migration. Safe to run on every start."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from patron.store.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(database: Database) -> None:
    with database.engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
