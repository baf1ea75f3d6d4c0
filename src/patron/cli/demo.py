"""`patron demo`: the demo program over the real CDNOW purchase history, then the API. Safe to run again."""

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel

from patron.cli.common import database, number, out, safe_url, say
from patron.cli.jobs import print_run, run_job
from patron.cli.server import run_server
from patron.cli.transfer import run_import
from patron.demo import cdnow
from patron.demo.totals import program_totals
from patron.services import keys, maintenance, programs
from patron.services.clock import utcnow
from patron.services.errors import NotFound
from patron.services.keys import Scope
from patron.settings import Settings
from patron.store.database import Database

DEMO_DATABASE = "sqlite:///patron-demo.db"
DEMO_PROGRAM = "demo"
PROGRAM_FILE = Path(cdnow.__file__).parent / "program.yaml"
# The program is in force from the first day of the data, midnight in the program's (and CDNOW's) time zone.
EFFECTIVE_FROM = datetime(1997, 1, 1, tzinfo=cdnow.ZONE)


def demo(
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Load the data and stop; do not serve the API.")] = False,
    sample: Annotated[bool, typer.Option("--sample", help="Load the 6,919-purchase sample instead of all.")] = False,
) -> None:
    """Load the demo program and the real CDNOW purchase history (1997-98), then serve the API.

    The database is PATRON_DATABASE_URL if set, else sqlite:///patron-demo.db. Running it again changes nothing
    but prints a new admin key (tokens are never stored, so an old one cannot be shown again).
    """
    settings = Settings()
    with database(default_url=DEMO_DATABASE) as db:
        url = db.url.render_as_string(hide_password=True)
        say(f"Database: {safe_url(url)}")
        program = _program(db)
        _publish(db, program)
        purchases = cdnow.read(cdnow.locate(sample=sample))
        say(
            f"CDNOW: {number(len(purchases))} purchases by {number(len({p.customer for p in purchases}))} customers, "
            f"{purchases[0].day[:4]}-{purchases[-1].day[:4]}."
        )
        members = cdnow.member_rows(purchases)
        run_import("members", db, program, members, len(members))
        orders = cdnow.order_rows(purchases)
        run_import("orders", db, program, orders, len(orders))
        now = utcnow()
        print_run("activated", run_job(db, "Activating", maintenance.activate, at=now, program=program), now)
        print_run("expired", run_job(db, "Expiring", maintenance.expire, at=now, program=program), now)
        with db.read() as conn:
            totals = program_totals(conn, program)
        _, token = db.run(lambda conn: keys.create(conn, program, "demo admin", {Scope.ADMIN}, now=utcnow()))
    say(
        f"Program {DEMO_PROGRAM!r}: {number(totals.members)} members, {number(totals.orders)} orders.\n"
        f"Points earned {number(totals.earned)}, expired {number(totals.expired)}, redeemed "
        f"{number(totals.redeemed)}; available now {number(totals.available)}, pending {number(totals.pending)}.\n"
        "Points expire 12 months after they are earned and the data ends in June 1998, so by now nearly all of "
        "them have expired: that is what the ledger says happened."
    )
    out.print(
        Panel(
            f"export PATRON_KEY={token}",
            title="Admin API key for program 'demo' (shown once)",
            expand=False,
        )
    )
    if no_serve:
        return
    # The API's workers read PATRON_DATABASE_URL themselves: point them at the database just loaded.
    os.environ["PATRON_DATABASE_URL"] = str(db.url.render_as_string(hide_password=False))
    run_server(settings.host, settings.port, settings.workers)


def _program(db: Database) -> int:
    with db.read() as conn:
        try:
            return programs.program_id(conn, DEMO_PROGRAM)
        except NotFound:
            pass
    created = programs.create_program(db, DEMO_PROGRAM, now=utcnow())
    say(f"Created program {DEMO_PROGRAM!r}.")
    return created


def _publish(db: Database, program: int) -> None:
    """Publishes the demo document unless a version with the same content exists (re-runs publish nothing)."""
    document = programs.read_document(PROGRAM_FILE)
    with db.read() as conn:
        published = programs.list_versions(conn, program)
    if any(version.document == document for version in published):
        return
    version = programs.publish(db, program, document, actor="demo", now=utcnow(), effective_from=EFFECTIVE_FROM)
    say(f"Published {PROGRAM_FILE.name} as version {version.version}, in force from 1997-01-01.")
