"""`patron cart`: what a cart would earn a member, the coupons that apply, and how to earn more. Writes nothing."""

from decimal import Decimal
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from patron.cli.common import ProgramOption, database, number, out, program_id, say
from patron.domain.carts import Cart
from patron.services import cart as cart_service
from patron.services.cart import CartEvaluation, CartRequest
from patron.services.clock import utcnow
from patron.services.program_cache import ProgramCache


def cart(
    member_id: Annotated[str, typer.Argument(metavar="MEMBER", help="The member's id.")],
    total: Annotated[Decimal, typer.Option(help="What the customer pays for the goods, before any coupon.")],
    code: Annotated[
        list[str] | None, typer.Option("--code", help="A coupon code sent with the cart (repeat for several).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's answer as JSON.")] = False,
    program: ProgramOption = "default",
) -> None:
    """Evaluate a cart for a member, as POST /v1/members/{id}/cart does: earnings per rule, coupons, hints."""
    request = CartRequest(cart=Cart(total=total), coupons=code or [])
    with database() as db:
        evaluation = cart_service.evaluate(
            db, ProgramCache(), program_id(db, program), member_id, request, now=utcnow()
        )
    if as_json:
        say(evaluation.model_dump_json(indent=2))
    else:
        _print(evaluation)


def _print(evaluation: CartEvaluation) -> None:
    say(
        f"{evaluation.member_id} would earn {number(evaluation.points)} points "
        f"({number(evaluation.pending_points)} pending) under program version {evaluation.program_version}; "
        f"best coupon discount {evaluation.best_discount}."
    )
    rules = Table("rule", "fired", "points", "reason", title="Rules")
    for rule in evaluation.rules:
        rules.add_row(Text(rule.rule_id), "yes" if rule.fired else "no", number(rule.points), Text(rule.reason))
    out.print(rules)
    if evaluation.coupons:
        coupons = Table("code", "offer", "applies", "discount", "reason", title="Coupons")
        for check in evaluation.coupons:
            coupons.add_row(
                Text(check.code),
                Text(check.description),
                "yes" if check.applies else "no",
                str(check.discount),
                Text(check.reason),
            )
        out.print(coupons)
    for note in evaluation.notes:
        say(f"note: {note}")
    for hint in evaluation.hints:
        say(f"hint: {hint.message}")
