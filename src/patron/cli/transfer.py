"""`patron import`: members and orders from CSV files, through the path the API's events take."""

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated

import typer

from patron.cli.common import ExistingFile, ProgramOption, database, err, number, program_id, progress_bar, say
from patron.services import imports
from patron.services.clock import utcnow
from patron.services.imports import ImportReport, Row
from patron.store.database import Database

app = typer.Typer(
    help="Import members and orders from CSV files (UTF-8, a header line naming the columns). Every row is "
    "checked first: a file with a bad row is refused whole (exit 1, the rows named) and nothing is written. "
    "Re-running an import changes nothing.",
    no_args_is_help=True,
)


@app.command("members")
def members_(file: ExistingFile, program: ProgramOption = "default") -> None:
    """Members: member_id, and optionally email, phone, birthday (YYYY-MM-DD), locale, attributes.<name>."""
    with database() as db:
        report = run_import("members", db, program_id(db, program), _csv(file, "members"), imports.count_rows(file))
    exit_if_rejected(report)


JobsOption = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        help="Processes importing at once, each taking its own members' orders (default: 2 on PostgreSQL where "
        "there are 2 cores; SQLite always 1). Every order earns what it would in one process.",
        show_default=False,
    ),
]


@app.command("orders")
def orders(file: ExistingFile, program: ProgramOption = "default", jobs: JobsOption = None) -> None:
    """Orders: member_id, order_id, occurred_at (ISO 8601 with a zone), total; optionally event_id (default
    order:<order_id>), channel, store. Members must exist: import them first."""
    with database() as db:
        report = run_import(
            "orders", db, program_id(db, program), _csv(file, "orders"), imports.count_rows(file), jobs=jobs
        )
    exit_if_rejected(report)


def _csv(file: Path, kind: str) -> Callable[[], Iterable[Row]]:
    """Reads the file afresh for each pass (check, then import), so a large file is never held in memory."""
    if kind == "members":
        return lambda: imports.read_csv(
            file, known=imports.MEMBER_COLUMNS, required=imports.MEMBER_REQUIRED, prefix=imports.ATTRIBUTE_PREFIX
        )
    return lambda: imports.read_csv(file, known=imports.ORDER_COLUMNS, required=imports.ORDER_REQUIRED)


def run_import(
    kind: str, db: Database, program: int, rows: Callable[[], Iterable[Row]], total: int, *, jobs: int | None = None
) -> ImportReport:
    """Checks every row, then imports them if none is bad, with progress bars; prints the report. `patron demo`
    uses it too. A refused file's report has `rejected` > 0 and nothing was written."""
    with progress_bar(f"Checking {kind}", total) as advance:
        if kind == "members":
            checked = imports.check_members(rows(), progress=advance)
        else:
            checked = imports.check_orders(db, program, rows(), now=utcnow(), progress=advance)
    if checked.rejected:
        print_rejections(checked)
        err.print(
            f"Nothing was imported: {number(checked.rejected)} of {number(checked.rows)} rows cannot be. "
            "Fix them and run the import again.",
            markup=False,
            soft_wrap=True,
        )
        return checked
    started = time.perf_counter()
    with progress_bar(f"Importing {kind}", total) as advance:
        if kind == "members":
            report = imports.import_members(db, program, rows(), now=utcnow(), progress=advance)
        else:
            report = imports.import_orders(db, program, rows(), now=utcnow(), progress=advance, jobs=jobs)
    print_report(kind, report, time.perf_counter() - started)
    return report


def print_report(kind: str, report: ImportReport, seconds: float) -> None:
    rate = f", {number(round(report.rows / seconds))} rows/s" if seconds > 0 and report.rows else ""
    processes = f" by {report.processes} processes" if report.processes > 1 else ""
    say(
        f"{kind.capitalize()}: {number(report.rows)} rows: {number(report.accepted)} accepted, "
        f"{number(report.replayed)} already imported, {number(report.rejected)} rejected "
        f"in {seconds:.1f} s{processes}{rate}."
    )
    if kind == "orders" and report.accepted:
        say(f"  They earned {number(report.points)} points ({number(report.pending_points)} of them pending).")
    print_rejections(report)


def print_rejections(report: ImportReport) -> None:
    if report.rejections:
        shown = len(report.rejections)
        first = f" (the first {shown} of {number(report.rejected)})" if shown < report.rejected else ""
        err.print(f"Rejected rows{first}:", markup=False, soft_wrap=True)
        for rejection in report.rejections:
            err.print(f"  {rejection}", markup=False, soft_wrap=True)


def exit_if_rejected(report: ImportReport) -> None:
    if report.rejected:
        raise typer.Exit(1)
