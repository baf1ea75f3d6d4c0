"""`patron coupons`: batches of coupon codes. Codes go to stdout one a line, so they can be piped to a mailer."""

from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from patron.cli.common import ProgramOption, actor, database, err, moment, number, out, program_id, say
from patron.domain.coupons import DEFAULT_PATTERN, MAX_BATCH, CouponKind, Offer
from patron.services import coupons
from patron.services.clock import utcnow

app = typer.Typer(help="Create and look at coupon batches.", no_args_is_help=True)


@app.command("create-batch")
def create_batch(
    name: Annotated[str, typer.Argument(help="The batch's name, e.g. spring-2026.")],
    kind: Annotated[CouponKind, typer.Option(help="What each code gives.")],
    count: Annotated[int, typer.Option(min=1, max=MAX_BATCH, help="How many codes.")] = 1,
    pattern: Annotated[str, typer.Option(help="'#' marks a random character (at least 8).")] = DEFAULT_PATTERN,
    amount: Annotated[Decimal | None, typer.Option(help="amount_off, spend_and_save: the amount off.")] = None,
    percent: Annotated[Decimal | None, typer.Option(help="percent_off, trial: the percentage off.")] = None,
    sku: Annotated[str | None, typer.Option(help="free_product, trial: the product.")] = None,
    min_spend: Annotated[Decimal | None, typer.Option(help="The cart total a code needs.")] = None,
    valid_from: Annotated[str | None, typer.Option(help="ISO 8601 time with a zone.")] = None,
    valid_until: Annotated[
        str | None, typer.Option(help="ISO 8601 time with a zone: the first moment not valid.")
    ] = None,
    uses_per_code: Annotated[int, typer.Option(min=1, help="1 for single-use codes.")] = 1,
    per_member_limit: Annotated[int | None, typer.Option(min=1, help="Uses of the batch per member.")] = None,
    program: ProgramOption = "default",
) -> None:
    """Create a batch of unique, unguessable codes and print them."""
    fields: dict[str, Any] = {
        "kind": kind,
        "amount": amount,
        "percent": percent,
        "sku": sku,
        "valid_from": moment(valid_from, "--valid-from") if valid_from else None,
        "valid_until": moment(valid_until, "--valid-until") if valid_until else None,
        "uses_per_code": uses_per_code,
        "per_member_limit": per_member_limit,
    }
    if min_spend is not None:
        fields["min_spend"] = min_spend
    offer = Offer.model_validate(fields)
    with database() as db:
        batch = coupons.create_batch(
            db, program_id(db, program), name, offer, count=count, pattern=pattern, actor=actor(), now=utcnow()
        )
    for code in batch.codes:
        say(code.code)
    err.print(f"Created batch {name!r}: {number(count)} codes, {batch.description}.", markup=False, soft_wrap=True)


@app.command("list")
def list_(program: ProgramOption = "default") -> None:
    """The batches, with what they give and how many codes are used."""
    with database() as db, db.read() as conn:
        found = coupons.batches(conn, program_id(db, program))
    table = Table("batch", "offer", "codes", "used", "valid", "created", title=f"Coupon batches of {program!r}")
    for batch in found:
        table.add_row(
            Text(batch.name),
            Text(batch.description),
            number(batch.codes_issued),
            number(batch.codes_used),
            _window(batch.offer),
            batch.created_at.isoformat(timespec="minutes"),
        )
    out.print(table)


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="The batch's name.")],
    program: ProgramOption = "default",
) -> None:
    """One batch: its offer and limits, and each code with its uses."""
    with database() as db, db.read() as conn:
        batch = coupons.batch_detail(conn, program_id(db, program), name)
    offer = batch.offer
    grid = Table.grid(padding=(0, 2))
    grid.add_row("batch", Text(batch.name))
    grid.add_row("offer", Text(batch.description))
    grid.add_row("minimum spend", str(offer.min_spend))
    grid.add_row("valid", _window(offer))
    grid.add_row("uses per code", str(offer.uses_per_code))
    grid.add_row("per member", str(offer.member_limit or "no limit"))
    grid.add_row("codes", f"{number(batch.codes_issued)} ({number(batch.codes_used)} used)")
    out.print(grid)
    table = Table("code", "uses", "member")
    for code in batch.codes:
        table.add_row(code.code, str(code.uses), Text(code.member_id or ""))
    out.print(table)


def _window(offer: Offer) -> str:
    start = offer.valid_from.isoformat(timespec="minutes") if offer.valid_from else "always"
    end = offer.valid_until.isoformat(timespec="minutes") if offer.valid_until else "no end"
    return f"{start} to {end}"
