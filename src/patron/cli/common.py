"""What every command shares: the consoles, the database it opens (migrated), options, and error reporting.

Exit codes: 0 done; 1 Patron refused or could not do it (a ServiceError, an invalid document or row, an
unreachable database); 2 the command line itself is wrong (click's convention: an unknown option, a missing
file, a time without a time zone).
"""

import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from typer.core import TyperGroup

from patron.services import programs
from patron.services.clock import utcnow
from patron.services.errors import NotFound, ServiceError
from patron.settings import Settings
from patron.store.database import Database
from patron.store.migrate import migrate

# Results go to stdout (so they can be piped); progress and errors to stderr. No emoji codes: ids and values
# such as "sku:b:2" must print as given, not as ":b:" turned into a picture.
out = Console(highlight=False, emoji=False)
err = Console(stderr=True, highlight=False, emoji=False)

ProgramOption = Annotated[
    str, typer.Option("--program", "-p", envvar="PATRON_PROGRAM", help="The program's slug.", show_envvar=True)
]
ExistingFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, show_default=False)]


class BadInput(ServiceError):
    """A command-line value that cannot be read (exit 2, like click's own usage errors)."""


class PatronGroup(TyperGroup):
    """Turns the errors a user can act on into one line naming the field, instead of a traceback."""

    def invoke(self, ctx: Any) -> Any:  # Any: Typer vendors click, and its Context type is private
        try:
            return super().invoke(ctx)
        except BadInput as exc:
            fail(exc.field, exc.detail, code=2)
        except ServiceError as exc:
            fail(exc.field, exc.detail)
        except ValidationError as exc:
            for field, message in validation_errors(exc):
                error_line(field, message)
            raise typer.Exit(1) from None
        except OperationalError as exc:
            # Connection refused, unknown database, locked file: the first line of the driver's message says which.
            fail("database", f"{_first_line(exc.orig)} ({safe_url(Settings().database_url)})")
        except ArgumentError as exc:  # an unreadable PATRON_DATABASE_URL
            fail("PATRON_DATABASE_URL", _first_line(exc))


def _first_line(exc: object) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def error_line(field: str | None, message: str) -> None:
    err.print(f"error: {field}: {message}" if field else f"error: {message}", markup=False, soft_wrap=True)


def fail(field: str | None, message: str, *, code: int = 1) -> NoReturn:
    error_line(field, message)
    raise typer.Exit(code)


def validation_errors(exc: ValidationError) -> list[tuple[str | None, str]]:
    """Each error with the document path of its field (rules.0.when), as the program document guide names them."""
    found = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or None
        found.append((path, error["msg"].removeprefix("Value error, ")))
    return found


def safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "an unreadable URL"


@contextmanager
def database(*, default_url: str | None = None) -> Iterator[Database]:
    """The database from PATRON_DATABASE_URL (or `default_url` when that is not set), migrated to the newest
    schema first, so no command needs a separate migration step."""
    settings = Settings()
    url = settings.database_url
    if default_url is not None and "database_url" not in settings.model_fields_set:
        url = default_url
    db = Database(url, pool_size=settings.pool_size)
    try:
        migrate(db)
        yield db
    finally:
        db.dispose()


def program_id(db: Database, slug: str) -> int:
    with db.read() as conn:
        try:
            return programs.program_id(conn, slug)
        except NotFound as exc:
            raise NotFound(
                f"no program {slug!r}: create it with `patron init --program {slug}`", field="program"
            ) from exc


def moment(value: str | None, option: str) -> datetime:
    """An ISO 8601 time with its time zone (2026-01-31T00:00:00Z); now when not given."""
    if value is None:
        return utcnow()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(f"not an ISO 8601 time: {value!r}", field=option) from None
    if parsed.tzinfo is None:
        example = value if "T" in value else f"{value}T00:00:00"
        raise BadInput(f"{value!r} has no time zone: add one, e.g. {example}Z or {example}+01:00", field=option)
    return parsed


def actor() -> str:
    """Who did it, for the journal and the audit log."""
    try:
        return f"cli:{getpass.getuser()}"[:128]
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar on stderr; yields the callback services call with each chunk of work done.
    With total None (a count not known up front) it counts without a bar's end."""
    columns = [
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=err) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done: progress.advance(task, done)


def say(text: str) -> None:
    """A line of plain text on stdout: never read as markup, never wrapped (it may be piped or grepped)."""
    out.print(text, markup=False, soft_wrap=True)


def number(value: int) -> str:
    return f"{value:,}"
