"""`patron member`: one member's points, lots and history, read straight from the ledger."""

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from patron.cli.common import ProgramOption, database, number, out, program_id
from patron.services import members
from patron.services.clock import utcnow

app = typer.Typer(help="Look at members.", no_args_is_help=True)


@app.command()
def show(
    member_id: Annotated[str, typer.Argument(metavar="ID", help="The member's id, as the merchant knows them.")],
    history: Annotated[int, typer.Option(min=0, max=200, help="How many history entries to show.")] = 10,
    program: ProgramOption = "default",
) -> None:
    """Balance (available, pending, owed), open lots, and the latest history entries."""
    with database() as db:
        the_program = program_id(db, program)
        with db.read() as conn:
            member = members.view(conn, the_program, member_id, now=utcnow())
            lots = members.open_lots(conn, the_program, member_id)
            entries = members.history(conn, the_program, member_id, cursor=None, limit=history).entries

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
