"""`patron grant` (birthdays, anniversaries) and `patron tiers` (review, history): safe to run as often as you like."""

from datetime import date
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from patron.cli.common import BadInput, ProgramOption, database, moment, number, out, program_id, say
from patron.services import members, occasions, standing, tier_review
from patron.services.program_cache import ProgramCache

grant_app = typer.Typer(
    help="Grant birthdays and sign-up anniversaries (once per member per year).", no_args_is_help=True
)
tiers_app = typer.Typer(help="Tier downgrades and history.", no_args_is_help=True)

DateOption = Annotated[
    str | None,
    typer.Option(
        "--date", help="The local date to grant for (YYYY-MM-DD). Default: each member's today.", show_default=False
    ),
]
NowOption = Annotated[
    str | None,
    typer.Option("--now", help="Run as of this ISO 8601 time (with a zone) instead of now.", show_default=False),
]


def _date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadInput(f"not a date (YYYY-MM-DD): {value!r}", field="--date") from None


def _grant(occasion: occasions.OccasionName, on: str | None, now: str | None, program: str) -> None:
    day, at = _date(on), moment(now, "--now")
    with database() as db:
        report = occasions.grant(db, ProgramCache(), program_id(db, program), occasion, on=day, now=at)
    say(
        f"{occasion.capitalize()}s: {number(report.members)} member(s) granted {number(report.points)} points "
        f"and {number(report.coupons)} coupon(s)."
    )


@grant_app.command()
def birthdays(date: DateOption = None, now: NowOption = None, program: ProgramOption = "default") -> None:
    """Grant the program's birthday gift to members whose birthday is due (days_before included)."""
    _grant("birthday", date, now, program)


@grant_app.command()
def anniversaries(date: DateOption = None, now: NowOption = None, program: ProgramOption = "default") -> None:
    """Grant the program's sign-up anniversary gift to members whose anniversary is due."""
    _grant("anniversary", date, now, program)


@tiers_app.command()
def review(now: NowOption = None, program: ProgramOption = "default") -> None:
    """Apply the downgrades due at the end of a window (after its grace period), one level at a time."""
    at = moment(now, "--now")
    with database() as db:
        report = tier_review.review(db, ProgramCache(), program_id(db, program), now=at)
    say(f"Reviewed {number(report.members)} member(s): {number(report.changes)} tier change(s).")


@tiers_app.command()
def history(
    member_id: Annotated[str, typer.Argument(metavar="ID", help="The member's id, as the merchant knows them.")],
    program: ProgramOption = "default",
) -> None:
    """Every tier change of a member, with its reason."""
    with database() as db:
        the_program = program_id(db, program)
        with db.read() as conn:
            changes = standing.tier_history(conn, members.require(conn, the_program, member_id).id)
    if not changes:
        say("No tier changes.")
        return
    table = Table("when", "from", "to", "reason", title=f"Tier changes of {member_id}")
    for c in changes:
        table.add_row(c.occurred_at.isoformat(timespec="minutes"), c.from_tier or "-", c.to_tier or "-", Text(c.reason))
    out.print(table)
