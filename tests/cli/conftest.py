"""`patron` commands run in-process (typer's CliRunner) against the `db` fixture's database, on each backend."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from click.testing import Result
from typer.testing import CliRunner

from patron.cli import app, common
from patron.store.database import Database
from patron.store.tables import metadata
from tests.helpers import program_document


@dataclass
class Cli:
    db: Database
    folder: Path

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(app, list(args))

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        return result

    def file(self, name: str, text: str) -> str:
        path = self.folder / name
        path.write_text(text, encoding="utf-8")
        return str(path)


@pytest.fixture
def cli(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("PATRON_DATABASE_URL", db.url.render_as_string(hide_password=False))
    monkeypatch.delenv("PATRON_PROGRAM", raising=False)
    # Wide consoles, so that Rich tables are not wrapped: tests read their rows. (The consoles were made when
    # patron.cli was imported; COLUMNS set now would be too late for them.)
    for console in (common.out, common.err):
        monkeypatch.setattr(console, "width", 200)
    monkeypatch.chdir(tmp_path)  # no stray .env file is read
    return Cli(db, tmp_path)


@pytest.fixture
def shop(cli: Cli) -> Cli:
    """A program 'default' (the CLI's default) with the demo document published, in force since 1990."""
    cli.ok("init")
    document = program_document().model_dump(mode="json", exclude_none=True)
    published = cli.file("program.yaml", yaml.safe_dump(document, sort_keys=False))
    cli.ok("program", "publish", published, "--effective-from", "1990-01-01T00:00Z")
    return cli


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: a refused command must change none."""
    with db.read() as conn:
        return {
            table.name: sorted((tuple(row) for row in conn.execute(sa.select(table)).all()), key=repr)
            for table in metadata.sorted_tables
        }


def count(db: Database, table: sa.Table) -> int:
    with db.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
