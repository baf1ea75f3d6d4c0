"""`patron member`: one member's points, lots and history, read straight from the ledger."""

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from patron.cli.common import ProgramOption, database, number, out, program_id
from patron.services import members, standing
from patron.services.clock import utcnow
from patron.services.standing import StampCardView
from patron.services.views import GrantView

app = typer.Typer(help="Look at members.", no_args_is_help=True)


@app.command()
def show(
    member_id: Annotated[str, typer.Argument(metavar="ID", help="The member's id, as the merchant knows them.")],
    history: Annotated[int, typer.Option(min=0, max=200, help="How many history entries to show.")] = 10,
    program: ProgramOption = "default",
) -> None:
    """Profile and tier (with the progress to the next), stamp cards, balance (available, pending, owed), open
    lots, and the latest history entries."""
    with database() as db:
        the_program = program_id(db, program)
        with db.read() as conn:
            now = utcnow()
            member = members.view(conn, the_program, member_id, now=now)
            lots = members.open_lots(conn, the_program, member_id)
            # history(limit=0) is not asked: there is no page to read.
            entries = (
                members.history(conn, the_program, member_id, cursor=None, limit=history).entries if history else []
            )
            row_id = members.require(conn, the_program, member_id).id
            cards = standing.stamp_cards(conn, the_program, row_id, now=now)
            full_cards = [g for g in standing.grants(conn, row_id) if g.source.startswith("stamp_card:")]

    profile = Table.grid(padding=(0, 2))
    profile.add_row("member", Text(member.member_id))
    for label, value in (("email", member.email), ("phone", member.phone), ("locale", member.locale)):
        if value:
            profile.add_row(label, Text(value))
    if member.birthday:
        profile.add_row("birthday", member.birthday.isoformat())
    if member.attributes:
        profile.add_row("attributes", Text(", ".join(f"{k}={v}" for k, v in sorted(member.attributes.items()))))
    profile.add_row("member since", _when(member.member_since))
    if member.tier is not None:
        perks = [
            p
            for p, on in (
                ("free shipping", member.tier.free_shipping),
                ("dedicated service", member.tier.dedicated_service),
            )
            if on
        ]
        profile.add_row(
            "tier",
            Text(f"{member.tier.name or 'none'}: {member.tier.progress}" + (f" ({', '.join(perks)})" if perks else "")),
        )
    if member.recognition is not None:
        seen = member.recognition
        usual = ", ".join(x for x in (seen.usual_sku, seen.usual_category) if x)
        profile.add_row("visits", f"{seen.visits:,}" + (f", the usual: {usual}" if usual else ""))
    out.print(profile)

    if cards:
        _print_cards(cards, full_cards)

    balance = Table("available", "pending", "owed", title="Points")
    balance.add_row(number(member.balance.available), number(member.balance.pending), number(member.balance.owed))
    out.print(balance)

    if lots:
        table = Table(
            "points", "remaining", "status", "earned", "available from", "expires", "order", title="Open lots"
        )
        for lot in lots:
            table.add_row(
                number(lot.points),
                number(lot.remaining),
                lot.status,
                _when(lot.earned_at),
                _when(lot.available_at),
                _when(lot.expires_at) if lot.expires_at else "never",
                Text(lot.order_id or ""),
            )
        out.print(table)
    else:
        out.print("No open lots.")

    if entries:
        table = Table("#", "kind", "occurred", "posted", "postings", "memo", title=f"Latest {len(entries)} entries")
        for entry in entries:
            moves = ", ".join(f"{p.account} {p.amount:+,}" for p in entry.postings)
            table.add_row(
                str(entry.transaction_id),
                entry.kind,
                _when(entry.occurred_at),
                _when(entry.posted_at),
                moves,
                Text(entry.memo),
            )
        out.print(table)
    elif history:
        out.print("No history yet.")


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="minutes")


def _print_cards(cards: list[StampCardView], full_cards: list[GrantView]) -> None:
    table = Table("card", "stamps", "started", "expires", "completed", title="Stamp cards")
    for card in cards:
        if card.started_at is None:
            started, expires = "", ""
        else:
            started = _when(card.started_at)
            expires = "never" if card.expires_at is None else _when(card.expires_at)
            if card.expired:
                expires += " (expired: the next stamp starts a new card)"
        table.add_row(
            Text(f"{card.card}: {card.name}"), f"{card.stamps} of {card.size}", started, expires, str(card.completed)
        )
    out.print(table)
    if full_cards:
        table = Table("card", "reward", "coupon code", "completed at", title="Completed cards")
        for grant in full_cards:
            table.add_row(
                Text(grant.source.removeprefix("stamp_card:")),
                Text(grant.reward_id),
                Text(grant.coupon_code),
                _when(grant.granted_at),
            )
        out.print(table)
