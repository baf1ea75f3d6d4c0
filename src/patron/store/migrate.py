"""Brings a database's schema to the newest migration. Safe to run on every start."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from patron.store.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(database: Database, revision: str = "head") -> None:
    """Upgrades to `revision`; a revision older than the database's downgrades to it."""
    with database.engine.connect() as connection:
        if connection.dialect.name != "sqlite":
            with connection.begin():
                _move_to(connection, revision)
            return
        # SQLite alters a table by copying it and dropping the original, and that DROP fails while foreign keys are
        # enforced and other tables refer to rows. The pragma is ignored inside a transaction, so it is set on the
        # driver's connection before BEGIN, and every key is checked before the migration commits.
        raw = connection.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                _move_to(connection, revision)
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken[:5]}")
        finally:
            raw.execute("PRAGMA foreign_keys=ON")


def _move_to(connection: Connection, revision: str) -> None:
    config = alembic_config(connection)
    current = MigrationContext.configure(connection).get_current_revision()
    script = ScriptDirectory.from_config(config)
    if revision != "head" and current is not None and _is_older(script, revision, current):
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)


def _is_older(script: ScriptDirectory, revision: str, current: str) -> bool:
    return any(step.revision == revision for step in script.iterate_revisions(current, "base"))
