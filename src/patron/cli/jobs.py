"""`patron expire` and `patron activate`: the ledger's scheduled jobs, safe to run as often as you like."""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Protocol

import typer

from patron.cli.common import database, moment, number, program_id, progress_bar, say
from patron.services import maintenance
from patron.services.maintenance import RunReport
from patron.store.database import Database

NowOption = Annotated[
    str | None,
    typer.Option("--now", help="Run as of this ISO 8601 time (with a zone) instead of now.", show_default=False),
]
AnyProgramOption = Annotated[
    str | None,
    typer.Option(
        "--program",
        "-p",
        envvar="PATRON_PROGRAM",
        help="Only this program. Default: every program.",
        show_default=False,
    ),
]


class Job(Protocol):
    def __call__(
        self, db: Database, *, now: datetime, program_id: int | None, progress: Callable[[int], None] | None
    ) -> RunReport: ...


def expire(now: NowOption = None, program: AnyProgramOption = None) -> None:
    """Expire what is left of every lot past its expiry date."""
    _run("Expiring lots", maintenance.expire, "expired", now, program)


def activate(now: NowOption = None, program: AnyProgramOption = None) -> None:
    """Make pending points available once their return window has passed."""
    _run("Activating lots", maintenance.activate, "activated", now, program)


def _run(description: str, job: Job, verb: str, now: str | None, program: str | None) -> None:
    at = moment(now, "--now")
    with database() as db:
        report = run_job(db, description, job, at=at, program=program_id(db, program) if program else None)
    print_run(verb, report, at)


def run_job(db: Database, description: str, job: Job, *, at: datetime, program: int | None) -> RunReport:
    """The job with a progress bar counting lots: how many are due is not known up front."""
    with progress_bar(description, None) as advance:
        return job(db, now=at, program_id=program, progress=advance)


def print_run(verb: str, report: RunReport, at: datetime) -> None:
    say(
        f"As of {at.isoformat(timespec='seconds')}: {verb} {number(report.points)} points in {number(report.lots)} "
        f"lots ({number(report.members)} member postings in {number(report.transactions)} journal transactions)."
    )
