"""`patron demo`: the demo program over the real CDNOW purchase history, then the API. Safe to run again."""

import os
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated

import typer

from patron.cli.common import database, number, safe_url, say
from patron.cli.jobs import print_run, run_job
from patron.cli.server import run_server
from patron.cli.transfer import exit_if_rejected, run_import
from patron.demo import cdnow
from patron.demo.totals import program_totals
from patron.domain.program import ProgramDocument
from patron.services import keys, maintenance, programs, raffles
from patron.services.clock import utcnow
from patron.services.errors import NotFound
from patron.services.keys import Scope
from patron.settings import Settings
from patron.store.database import Database

DEMO_DATABASE = "sqlite:///patron-demo.db"
DEMO_PROGRAM = "demo"
PROGRAM_FILE = Path(cdnow.__file__).parent / "program.yaml"


def demo(
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Load the data and stop; do not serve the API.")] = False,
    sample: Annotated[bool, typer.Option("--sample", help="Load the 6,919-purchase sample instead of all.")] = False,
) -> None:
    """Load the demo program and the real CDNOW purchase history, then serve the API.

    CDNOW's 18 months (1997-98) are replayed as if they ended yesterday, through `patron import`'s path. The
    database is PATRON_DATABASE_URL if set, else sqlite:///patron-demo.db. Running it again changes nothing but
    prints a new admin key (tokens are never stored, so an old one cannot be shown again).
    """
    settings = Settings()
    with database(default_url=DEMO_DATABASE) as db:
        url = db.url.render_as_string(hide_password=True)
        say(f"Database: {safe_url(url)}")
        program = _program(db)
        start = _replay_start(db, program)
        _publish(db, program, start)
        purchases = cdnow.read(cdnow.locate(sample=sample))
        shift = start.date() - cdnow.FIRST_DAY
        customers = len({p.customer for p in purchases})
        say(
            f"CDNOW: {number(len(purchases))} purchases by {number(customers)} customers from "
            f"{cdnow.FIRST_DAY} to {cdnow.LAST_DAY}, replayed as if made from {cdnow.FIRST_DAY + shift} to "
            f"{cdnow.LAST_DAY + shift}."
        )
        members = cdnow.member_rows(purchases)
        exit_if_rejected(run_import("members", db, program, lambda: members, len(members)))
        orders = cdnow.order_rows(purchases, shift=shift)
        exit_if_rejected(run_import("orders", db, program, lambda: orders, len(orders)))
        now = utcnow()
        print_run("activated", run_job(db, "Activating", maintenance.activate, at=now, program=program), now)
        print_run("expired", run_job(db, "Expiring", maintenance.expire, at=now, program=program), now)
        offers = _offers(db, program)
        with db.read() as conn:
            totals = program_totals(conn, program)
        _, token = db.run(lambda conn: keys.create(conn, program, "demo admin", {Scope.ADMIN}, now=utcnow()))
    say(
        f"Program {DEMO_PROGRAM!r}: {number(totals.members)} members, {number(totals.orders)} orders.\n"
        f"Points earned {number(totals.earned)}, expired {number(totals.expired)}, redeemed "
        f"{number(totals.redeemed)}; available now {number(totals.available)}, pending {number(totals.pending)}.\n"
        "Points expire 12 months after they are earned, and the last 14 days' purchases are still in their return "
        "window.\n"
        "An admin API key for program 'demo', shown only now (each run makes a new one):"
    )
    say(f"export PATRON_KEY={token}")
    say(offers)
    if no_serve:
        return
    # The API's workers read PATRON_DATABASE_URL themselves: point them at the database just loaded.
    os.environ["PATRON_DATABASE_URL"] = str(db.url.render_as_string(hide_password=False))
    # A person is watching the demo at a terminal, not a log collector (unless they asked for one).
    os.environ.setdefault("PATRON_LOG_FORMAT", "console")
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


def _replay_start(db: Database, program: int) -> datetime:
    """When the replayed history begins: midnight of its first day, in the program's (and CDNOW's) time zone.

    CDNOW's 18 months ended in 1998, and with 12-month expiry every point of it would have expired by now: a demo
    where nobody has points to spend. So the history is replayed as if its last day were yesterday. The first
    run fixes that start as the demo program's first version's effective date, and later runs read it back from
    there, so they send the same events again (replays) instead of new ones."""
    with db.read() as conn:
        published = programs.list_versions(conn, program)
    if published:
        return published[0].effective_from.astimezone(cdnow.ZONE)
    yesterday = utcnow().astimezone(cdnow.ZONE).date() - timedelta(days=1)
    first_day = yesterday - (cdnow.LAST_DAY - cdnow.FIRST_DAY)
    return datetime.combine(first_day, time(0), cdnow.ZONE)


RAFFLE_DAYS = 30


def _document(start: datetime) -> ProgramDocument:
    """program.yaml as the demo publishes it. As CDNOW's history is replayed to end yesterday, the raffles it
    declares are moved to draw RAFFLE_DAYS days after that, at the hour the file says: the demo's raffle is open
    whenever the demo is first run. Re-runs derive the same document from the same start."""
    document = programs.read_document(PROGRAM_FILE)
    last_day = start.date() + (cdnow.LAST_DAY - cdnow.FIRST_DAY)
    draw_day = last_day + timedelta(days=RAFFLE_DAYS)
    moved = tuple(
        raffle.model_copy(
            update={"draws_at": datetime.combine(draw_day, raffle.draws_at.astimezone(cdnow.ZONE).time(), cdnow.ZONE)}
        )
        for raffle in document.raffles
    )
    return document.model_copy(update={"raffles": moved})


def _publish(db: Database, program: int, start: datetime) -> None:
    """Publishes the demo document unless a version with the same content exists (re-runs publish nothing). The
    version makes the coupon batch and the raffle it declares."""
    document = _document(start)
    with db.read() as conn:
        published = programs.list_versions(conn, program)
    if any(version.document == document for version in published):
        return
    version = programs.publish(db, program, document, actor="demo", now=utcnow(), effective_from=start)
    say(f"Published {PROGRAM_FILE.name} as version {version.version}, in force from {start.date()}.")
    for made in version.made:
        say(f"Made {made}.")


SPEND_AND_SAVE = "spend-200-save-20"
RAFFLE = "listening-party"


def _offers(db: Database, program: int) -> str:
    """What program.yaml's coupon batch and raffle give, to try at a checkout and with points."""
    with db.read() as conn:
        raffle = raffles.view(conn, program, RAFFLE)
    draw = raffle.draws_at.astimezone(cdnow.ZONE)
    return (
        f"Offers: coupon batch {SPEND_AND_SAVE!r} (patron coupons show {SPEND_AND_SAVE} --program demo) and raffle "
        f"{RAFFLE!r}, {raffle.entry_cost} points an entry, drawn on {draw:%Y-%m-%d at %H:%M} "
        f"(patron raffle show {RAFFLE} --program demo)."
    )
