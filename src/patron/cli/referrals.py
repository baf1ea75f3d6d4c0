"""`patron referrals`: a member's referral code, and the referrals they made with each one's status."""

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from patron.cli.common import ProgramOption, database, err, out, program_id, say
from patron.services import referrals
from patron.services.clock import utcnow
from patron.services.program_cache import ProgramCache

app = typer.Typer(help="Referral codes, and the referrals a member made.", no_args_is_help=True)

MemberArgument = Annotated[str, typer.Argument(metavar="MEMBER", help="The member's id.")]


@app.command()
def code(member_id: MemberArgument, program: ProgramOption = "default") -> None:
    """Print the member's referral code, making it on first use (the code alone on stdout)."""
    with database() as db:
        view, created = referrals.code_for(db, program_id(db, program), member_id, now=utcnow())
    say(view.code)
    if created:
        err.print(f"Made a referral code for {member_id}.", markup=False, soft_wrap=True)


@app.command("list")
def list_(member_id: MemberArgument, program: ProgramOption = "default") -> None:
    """The referrals a member made, newest first: pending, rewarded, or not eligible and why."""
    with database() as db, db.read() as conn:
        made = referrals.made_by(conn, ProgramCache(), program_id(db, program), member_id, now=utcnow())
    if not made:
        say(f"{member_id} has referred nobody yet.")
        return
    table = Table("new member", "status", "eligible", "reason", "order", "signed up", title=f"Referrals by {member_id}")
    for referral in made:
        table.add_row(
            Text(referral.referee_id),
            referral.status.value,
            "yes" if referral.eligible else "no",
            Text(referral.reason or ""),
            Text(referral.order_id or ""),
            referral.created_at.isoformat(timespec="minutes"),
        )
    out.print(table)
