"""The `patron` application: top-level commands, and the command groups registered under it."""

from typing import Annotated

import typer

from patron.cli import (
    cart,
    coupons,
    demo,
    events,
    jobs,
    keys,
    loyalty,
    mail,
    members,
    program,
    raffles,
    referrals,
    rewards,
    transfer,
    webhooks,
    worker,
)
from patron.cli.common import PatronGroup, ProgramOption, database, say
from patron.cli.server import run_server
from patron.services import programs
from patron.services.clock import utcnow
from patron.settings import Settings

app = typer.Typer(
    name="patron",
    cls=PatronGroup,
    help="Patron, a self-hosted customer loyalty engine. Every command migrates the database "
    "(PATRON_DATABASE_URL, default sqlite:///patron.db) to the newest schema first.",
    no_args_is_help=True,
    add_completion=False,
    # A traceback's local variables could include the database URL's password or an API token.
    pretty_exceptions_show_locals=False,
)


@app.command()
def init(program: ProgramOption = "default") -> None:
    """Create a program. Publish its rules next with `patron program publish FILE`."""
    with database() as db:
        programs.create_program(db, program, now=utcnow())
    say(f"Created program {program!r}. Next: patron program publish FILE --program {program}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: PATRON_HOST or 127.0.0.1.", show_default=False)] = None,
    port: Annotated[int | None, typer.Option(help="Default: PATRON_PORT or 8000.", show_default=False)] = None,
    workers: Annotated[int | None, typer.Option(help="Default: PATRON_WORKERS or 1.", show_default=False)] = None,
) -> None:
    """Serve the HTTP API (docs at /docs) with uvicorn."""
    settings = Settings()
    with database():
        pass  # migrate once here, not in each worker at the same moment
    run_server(host or settings.host, port or settings.port, workers or settings.workers)


# `patron --help` lists plain commands in the order they are registered, then the groups.
app.command("demo")(demo.demo)
app.add_typer(program.app, name="program")
app.add_typer(keys.app, name="keys")
app.add_typer(transfer.app, name="import")
app.add_typer(members.app, name="member")
app.add_typer(events.app, name="event")
app.add_typer(coupons.app, name="coupons")
app.add_typer(mail.app, name="mail")
app.add_typer(raffles.app, name="raffle")
app.add_typer(referrals.app, name="referrals")
app.add_typer(rewards.app, name="rewards")
app.command("cart")(cart.cart)
app.add_typer(loyalty.grant_app, name="grant")
app.add_typer(loyalty.tiers_app, name="tiers")
app.command("activate")(jobs.activate)
app.command("expire")(jobs.expire)
app.command("worker")(worker.worker)
app.add_typer(worker.jobs_app, name="jobs")
app.add_typer(webhooks.app, name="webhooks")
