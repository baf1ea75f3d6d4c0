"""`patron event send`: report what a member did (a purchase, a refund, a sign-up, or a custom event such as a
review or a survey answer) through the same service as POST /v1/events, and print the receipt."""

import json
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table
from rich.text import Text

from patron.cli.common import BadInput, ProgramOption, database, err, error_line, moment, number, out, program_id, say
from patron.domain.engine import AnyEvent
from patron.domain.events import Custom, OrderLine, Purchase, Refund, Signup
from patron.services import events
from patron.services.clock import utcnow
from patron.services.errors import IdempotencyConflict, Invalid
from patron.services.program_cache import ProgramCache
from patron.services.views import EventReceipt

app = typer.Typer(help="Report what members did.", no_args_is_help=True)

# As the API: tills keep imperfect time, but an event stamped further ahead than this has a wrong date.
CLOCK_SKEW = timedelta(minutes=15)
# The event's fields as this command's options name them, for error messages.
_OPTIONS = {
    "event_id": "--id",
    "member_id": "MEMBER",
    "occurred_at": "--at",
    "name": "TYPE",
    "order_id": "--order",
    "total": "--total",
    "amount": "--amount",
    "lines": "--line",
    "channel": "--channel",
    "store": "--store",
    "attributes": "--attr",
}
# Which options each built-in type takes; a custom event takes --attr only.
_TAKES = {
    "purchase": {"--order", "--total", "--line", "--channel", "--store"},
    "refund": {"--order", "--amount", "--line"},
    "signup": set[str](),
}


@app.command()
def send(
    member_id: Annotated[str, typer.Argument(metavar="MEMBER", help="The member's id.", show_default=False)],
    event_type: Annotated[
        str,
        typer.Argument(
            metavar="TYPE",
            help="purchase, refund, signup, or the name of a custom event the program's rules name "
            "(review, social_share, follow, survey, newsletter, profile_completion, ...).",
            show_default=False,
        ),
    ],
    event_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="Your id for this event; sending it again with the same id is not counted twice. "
            "Required unless --dry-run.",
            show_default=False,
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="When it happened, ISO 8601 with a time zone. Default: now.", show_default=False),
    ] = None,
    attr: Annotated[
        list[str] | None,
        typer.Option(
            "--attr",
            metavar="KEY=VALUE",
            help="A custom event's attribute (repeat for several): review_id=R1, score=9, verified=true. Integers "
            "and true/false are read as such; quote a value to keep it text: code='\"123\"'.",
            show_default=False,
        ),
    ] = None,
    order: Annotated[str | None, typer.Option("--order", help="Purchase or refund: the order's id.")] = None,
    total: Annotated[
        str | None, typer.Option("--total", help="Purchase: the amount paid. Default: the sum of the lines.")
    ] = None,
    amount: Annotated[str | None, typer.Option("--amount", help="Refund: the amount refunded.")] = None,
    line: Annotated[
        list[str] | None,
        typer.Option(
            "--line",
            metavar="SKU:CATEGORY:QTY:UNIT_PRICE",
            help="Purchase or refund: an order line (repeat for several), e.g. cup-m:frozen-yogurt:2:3.50.",
            show_default=False,
        ),
    ] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Purchase: where it was bought.")] = None,
    store: Annotated[str | None, typer.Option("--store", help="Purchase: which store.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide, but write nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the receipt as the API returns it.")] = False,
    program: ProgramOption = "default",
) -> None:
    """Report an event, as POST /v1/events does, and print the receipt: each rule fired or not and why, the points,
    and the balance after it."""
    now = utcnow()
    given = {
        "--order": order,
        "--total": total,
        "--amount": amount,
        "--line": line,
        "--channel": channel,
        "--store": store,
        "--attr": attr,
    }
    takes = _TAKES.get(event_type, {"--attr"})
    for option, value in given.items():
        if value and option not in takes:
            raise BadInput(f"a {event_type} event does not take {option}", field=option)
    if event_id is None and not dry_run:
        raise BadInput("give the event an id: sent again with the same id, it is not counted twice", field="--id")
    fields: dict[str, Any] = {
        "event_id": event_id or "dry-run",
        "member_id": member_id,
        "occurred_at": moment(at, "--at"),
    }
    event = _event(event_type, fields, given)
    if event.occurred_at > now + CLOCK_SKEW:
        raise Invalid(f"{event.occurred_at.isoformat()} is in the future (it is now {now.isoformat()})", field="--at")

    with database() as db:
        program_key = program_id(db, program)
        if dry_run:
            receipt, replayed = events.dry_run(db, ProgramCache(), program_key, event), False
        else:
            try:
                receipt, replayed = events.ingest_reporting_replay(db, ProgramCache(), program_key, event, now=now)
            except IdempotencyConflict as exc:
                hint = "" if at is not None else "; without --at the time is now, so give the first one's --at"
                raise IdempotencyConflict(exc.detail + hint, field="--id") from None
    if replayed:
        err.print(
            f"Event {receipt.event_id} was already recorded: this is its first receipt, nothing was written again.",
            markup=False,
            soft_wrap=True,
        )
    if as_json:
        say(receipt.model_dump_json(indent=2))
    else:
        print_receipt(receipt, event_type)


def _event(event_type: str, fields: dict[str, Any], given: dict[str, Any]) -> AnyEvent:
    """The event the options describe, checked by the same model as the API's; errors name the options."""
    lines = [_line(text) for text in given["--line"] or ()]
    try:
        if event_type == "purchase":
            return Purchase(
                **fields,
                order_id=_required(given["--order"], "--order"),
                total=_money(given["--total"], "--total") if given["--total"] else _sum(lines),
                lines=tuple(lines),
                channel=given["--channel"] or "",
                store=given["--store"] or "",
            )
        if event_type == "refund":
            if bool(given["--amount"]) == bool(lines):
                raise BadInput("give exactly one of --amount or --line", field="--amount")
            amount = _money(given["--amount"], "--amount") if given["--amount"] else None
            return Refund(**fields, order_id=_required(given["--order"], "--order"), amount=amount, lines=tuple(lines))
        if event_type == "signup":
            return Signup(**fields)
        return Custom(**fields, name=event_type, attributes=_attributes(given["--attr"] or ()))
    except ValidationError as exc:
        for error in exc.errors():
            loc = [str(part) for part in error["loc"]]
            field = _OPTIONS.get(loc[0], loc[0]) if loc else None
            if field == "--line" and len(loc) > 1:
                field = f"--line {int(loc[1]) + 1}"
            error_line(field, error["msg"].removeprefix("Value error, "))
        raise typer.Exit(1) from None


def _required(value: str | None, option: str) -> str:
    if not value:
        raise BadInput("required for this event type", field=option)
    return value


def _money(text: str, option: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise BadInput(f"not an amount: {text!r}", field=option) from None
    if not value.is_finite():
        raise BadInput(f"not an amount: {text!r}", field=option)
    return value


def _line(text: str) -> OrderLine:
    parts = text.split(":")
    if len(parts) != 4:
        raise BadInput(f"{text!r} is not SKU:CATEGORY:QTY:UNIT_PRICE (the category may be empty)", field="--line")
    sku, category, quantity, price = parts
    if not quantity.isdigit():
        raise BadInput(f"{text!r}: the quantity {quantity!r} is not a whole number", field="--line")
    try:
        return OrderLine(sku=sku, category=category, quantity=int(quantity), unit_price=_money(price, "--line"))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BadInput(f"{text!r}: {where}: {first['msg']}", field="--line") from None


def _sum(lines: list[OrderLine]) -> Decimal:
    if not lines:
        raise BadInput("give the amount paid, or the order's lines with --line", field="--total")
    return sum((line.amount for line in lines), Decimal(0))


def _attributes(pairs: tuple[str, ...] | list[str]) -> dict[str, str | int | bool]:
    found: dict[str, str | int | bool] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadInput(f"{pair!r} is not KEY=VALUE", field="--attr")
        if key in found:
            raise BadInput(f"{key!r} is given twice", field="--attr")
        found[key] = _attribute_value(value)
    return found


def _attribute_value(text: str) -> str | int | bool:
    """Integers and true/false as such (a survey's score must be a number); a JSON-quoted value as text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, (bool, int, str)):
        return value
    return text  # a float, a list, null: kept as the text given


def print_receipt(receipt: EventReceipt, event_type: str) -> None:
    verb = "would earn" if receipt.dry_run else "earned"
    balance = receipt.balance
    say(
        f"{receipt.member_id} {verb} {number(receipt.points)} points ({number(receipt.pending_points)} pending) "
        f"for {event_type} {receipt.event_id} under program version {receipt.program_version}."
    )
    say(
        f"balance: {number(balance.available)} available, {number(balance.pending)} pending, "
        f"{number(balance.owed)} owed" + (" (before this event: nothing was written)" if receipt.dry_run else "")
    )
    if receipt.rules:
        rules = Table("rule", "fired", "points", "reason", title="Rules")
        for rule in receipt.rules:
            rules.add_row(Text(rule.rule_id), "yes" if rule.fired else "no", number(rule.points), Text(rule.reason))
        out.print(rules)
    for note in receipt.notes:
        say(f"note: {note}")
