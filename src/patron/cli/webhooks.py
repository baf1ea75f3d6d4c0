"""`patron webhooks`: subscriptions (the secret is shown once, at create and rotate), deliveries, replay."""

from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from patron.cli.common import ProgramOption, database, err, out, program_id, say
from patron.services.clock import utcnow
from patron.services.outbox import EventType
from patron.webhooks import subscriptions
from patron.webhooks.subscriptions import DeliveryStatus, SubscriptionWithSecret
from patron.worker.settings import WorkerSettings

app = typer.Typer(help="Webhook subscriptions, their deliveries, and replays.", no_args_is_help=True)


def _print_secret(created: SubscriptionWithSecret, verb: str) -> None:
    out.print(created.secret, markup=False, soft_wrap=True)  # alone on stdout, so `$(...)` captures it
    err.print(
        f"{verb} webhook {created.subscription.id} -> {created.subscription.url} "
        f"({', '.join(created.subscription.event_types)}). The signing secret above is shown only now: give it "
        "to the receiver (see docs/webhooks.md).",
        markup=False,
        soft_wrap=True,
    )


@app.command()
def create(
    url: Annotated[str, typer.Argument(help="Where to POST the events (http or https).")],
    event: Annotated[
        list[str],
        typer.Option(
            "--event", "-e", help=f"An event type; repeat for several. Known: {', '.join(t.value for t in EventType)}."
        ),
    ],
    description: Annotated[str, typer.Option(help="What the endpoint is, for the list.")] = "",
    program: ProgramOption = "default",
) -> None:
    """Subscribe an endpoint to event types and print its signing secret, once."""
    with database() as db:
        the_program = program_id(db, program)
        created = db.run(
            lambda conn: subscriptions.create(conn, the_program, url, event, description=description, now=utcnow())
        )
    _print_secret(created, "Created")


@app.command("list")
def list_subscriptions(program: ProgramOption = "default") -> None:
    """The program's subscriptions (never their secrets)."""
    with database() as db:
        the_program = program_id(db, program)
        with db.read() as conn:
            found = subscriptions.list_all(conn, the_program)
    table = Table("id", "url", "events", "description", "created", "disabled")
    for s in found:
        table.add_row(
            str(s.id),
            s.url,
            ", ".join(s.event_types),
            s.description,
            s.created_at.isoformat(timespec="seconds"),
            s.disabled_at.isoformat(timespec="seconds") if s.disabled_at else "",
        )
    out.print(table)


@app.command()
def rotate(
    subscription: Annotated[int, typer.Argument(help="The subscription's id.")],
    program: ProgramOption = "default",
) -> None:
    """Give the subscription a new secret and print it, once. Deliveries are signed with the old secret too
    for PATRON_WEBHOOK_ROTATION_GRACE_HOURS (default 24), so the receiver can switch without losing any."""
    grace = timedelta(hours=WorkerSettings().webhook_rotation_grace_hours)
    with database() as db:
        the_program = program_id(db, program)
        rotated = db.run(lambda conn: subscriptions.rotate(conn, the_program, subscription, now=utcnow(), grace=grace))
    _print_secret(rotated, "Rotated the secret of")


@app.command()
def disable(
    subscription: Annotated[int, typer.Argument(help="The subscription's id.")],
    program: ProgramOption = "default",
) -> None:
    """Stop delivering to the subscription."""
    with database() as db:
        the_program = program_id(db, program)
        db.run(lambda conn: subscriptions.disable(conn, the_program, subscription, now=utcnow()))
    say(f"Disabled webhook {subscription}.")


@app.command()
def deliveries(
    subscription: Annotated[int | None, typer.Option(help="Only this subscription's.", show_default=False)] = None,
    status: Annotated[DeliveryStatus | None, typer.Option(help="Only deliveries in this state.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 20,
    program: ProgramOption = "default",
) -> None:
    """The latest deliveries, newest first, with their attempts and the last error."""
    with database() as db:
        the_program = program_id(db, program)
        with db.read() as conn:
            found = subscriptions.deliveries(
                conn, the_program, subscription_id=subscription, status=status, limit=limit
            )
    table = Table("id", "webhook", "webhook-id", "type", "member", "status", "attempts", "next attempt", "last error")
    for d in found:
        table.add_row(
            str(d.id),
            str(d.subscription_id),
            d.message_id,
            d.type,
            d.member_id or "",
            d.status,
            str(d.attempts),
            d.next_attempt_at.isoformat(timespec="seconds") if d.status == DeliveryStatus.PENDING.value else "",
            d.last_error or "",
        )
    out.print(table)


@app.command()
def replay(
    delivery: Annotated[int | None, typer.Argument(help="A delivery's id.", show_default=False)] = None,
    dead_of: Annotated[
        int | None, typer.Option("--dead-of", help="Replay every dead delivery of this subscription.")
    ] = None,
    program: ProgramOption = "default",
) -> None:
    """Send a delivery again (same webhook-id and body, fresh signature), or every dead one of a subscription.
    The running worker sends it."""
    if (delivery is None) == (dead_of is None):
        raise typer.BadParameter("give a delivery id, or --dead-of SUBSCRIPTION")
    with database() as db:
        the_program = program_id(db, program)
        if delivery is not None:
            db.run(lambda conn: subscriptions.replay(conn, the_program, delivery, now=utcnow()))
            say(f"Delivery {delivery} queued again.")
        else:
            assert dead_of is not None
            count = db.run(lambda conn: subscriptions.replay_dead(conn, the_program, dead_of, now=utcnow()))
            say(f"{count} dead deliveries of webhook {dead_of} queued again.")
