"""`patron import`: members and orders from CSV files, through the path the API's events take."""

import time
from collections.abc import Iterable

import typer

from patron.cli.common import ExistingFile, ProgramOption, database, err, number, program_id, progress_bar, say
from patron.services import imports
from patron.services.clock import utcnow
from patron.services.imports import ImportReport, Row
from patron.store.database import Database

app = typer.Typer(
    help="Import members and orders from CSV files (UTF-8, a header line naming the columns). Re-running an "
    "import changes nothing. Exits 1 when a row was rejected; the other rows are imported.",
    no_args_is_help=True,
)


@app.command("members")
def members_(file: ExistingFile, program: ProgramOption = "default") -> None:
    """Members: member_id, and optionally email, phone, birthday (YYYY-MM-DD), locale, attributes.<name>."""
    rows = imports.read_csv(
        file, known=imports.MEMBER_COLUMNS, required=imports.MEMBER_REQUIRED, prefix=imports.ATTRIBUTE_PREFIX
    )
    with database() as db:
        report = run_import("members", db, program_id(db, program), rows, imports.count_rows(file))
    exit_if_rejected(report)


@app.command("orders")
def orders(file: ExistingFile, program: ProgramOption = "default") -> None:
    """Orders: member_id, order_id, occurred_at (ISO 8601 with a zone), total; optionally event_id (default
    order:<order_id>), channel, store. Members must exist: import them first."""
    rows = imports.read_csv(file, known=imports.ORDER_COLUMNS, required=imports.ORDER_REQUIRED)
    with database() as db:
        report = run_import("orders", db, program_id(db, program), rows, imports.count_rows(file))
    exit_if_rejected(report)


def run_import(kind: str, db: Database, program: int, rows: Iterable[Row], total: int) -> ImportReport:
    """Imports with a progress bar and prints the report; `patron demo` uses it too."""
    started = time.perf_counter()
    with progress_bar(f"Importing {kind}", total) as advance:
        if kind == "members":
            report = imports.import_members(db, program, rows, now=utcnow(), progress=advance)
        else:
            report = imports.import_orders(db, program, rows, now=utcnow(), progress=advance)
    print_report(kind, report, time.perf_counter() - started)
    return report


def print_report(kind: str, report: ImportReport, seconds: float) -> None:
    rate = f", {number(round(report.rows / seconds))} rows/s" if seconds > 0 and report.rows else ""
    say(
        f"{kind.capitalize()}: {number(report.rows)} rows: {number(report.accepted)} accepted, "
        f"{number(report.replayed)} already imported, {number(report.rejected)} rejected "
        f"in {seconds:.1f} s{rate}."
    )
    if kind == "orders" and report.accepted:
        say(f"  They earned {number(report.points)} points ({number(report.pending_points)} of them pending).")
    if report.rejections:
        shown = len(report.rejections)
        first = f" (the first {shown} of {number(report.rejected)})" if shown < report.rejected else ""
        err.print(f"Rejected rows{first}:", markup=False, soft_wrap=True)
        for rejection in report.rejections:
            err.print(f"  {rejection}", markup=False, soft_wrap=True)


def exit_if_rejected(report: ImportReport) -> None:
    if report.rejected:
        raise typer.Exit(1)
