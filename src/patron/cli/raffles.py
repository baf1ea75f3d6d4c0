"""`patron raffle`: points raffles, and `verify`, which anyone holding the database can run to check a draw."""

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from patron.cli.common import ProgramOption, actor, database, moment, number, out, program_id, say
from patron.services import raffles
from patron.services.clock import utcnow
from patron.services.program_cache import ProgramCache
from patron.services.raffles import RaffleSpec, RaffleView

app = typer.Typer(help="Points raffles: create, enter, draw, verify.", no_args_is_help=True)

NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="The raffle's name.")]


@app.command()
def create(
    name: NameArgument,
    prize: Annotated[str, typer.Option(help="The catalog reward each winner gets.")],
    draws_at: Annotated[str, typer.Option(help="ISO 8601 time with a zone: entries close then.")],
    cost: Annotated[int, typer.Option(min=1, help="Points per entry.")],
    winners: Annotated[int, typer.Option(min=1, help="How many members win.")] = 1,
    max_per_member: Annotated[int, typer.Option(min=1, help="Entries one member may hold.")] = 10,
    refund_losers: Annotated[bool, typer.Option(help="Give non-winners their points back.")] = False,
    program: ProgramOption = "default",
) -> None:
    """Create a raffle and print the SHA-256 of its secret seed (publish it)."""
    spec = RaffleSpec(
        name=name,
        prize_reward_id=prize,
        winners=winners,
        entry_cost=cost,
        max_entries_per_member=max_per_member,
        draws_at=moment(draws_at, "--draws-at"),
        refund_losers=refund_losers,
    )
    with database() as db:
        view = raffles.create(db, ProgramCache(), program_id(db, program), spec, actor=actor(), now=utcnow())
    say(f"Created raffle {view.name!r}, drawn at {view.draws_at.isoformat()}. Seed SHA-256: {view.seed_hash}")


@app.command()
def enter(
    name: NameArgument,
    member_id: Annotated[str, typer.Argument(metavar="MEMBER", help="The member's id.")],
    entries: Annotated[int, typer.Option(min=1, help="How many entries to buy.")] = 1,
    program: ProgramOption = "default",
) -> None:
    """Buy entries for a member with their points."""
    with database() as db:
        entry, _ = raffles.enter(db, program_id(db, program), name, member_id, entries, now=utcnow())
    say(
        f"{member_id} bought {entries} entries for {number(entry.points)} points and holds {entry.member_tickets}; "
        f"{number(entry.balance.available)} points left."
    )


@app.command()
def draw(name: NameArgument, program: ProgramOption = "default") -> None:
    """Draw the winners (from the draw time on) and reveal the seed."""
    with database() as db:
        view = raffles.draw(db, ProgramCache(), program_id(db, program), name, now=utcnow())
    _print(view)


@app.command()
def show(name: NameArgument, program: ProgramOption = "default") -> None:
    """A raffle's terms, its commitment, and after the draw the seed and winners."""
    with database() as db, db.read() as conn:
        view = raffles.view(conn, program_id(db, program), name)
    _print(view)


@app.command()
def verify(name: NameArgument, program: ProgramOption = "default") -> None:
    """Recompute the winners from the revealed seed and the entries; exit 1 if they differ from those recorded."""
    with database() as db, db.read() as conn:
        audit = raffles.audit(conn, program_id(db, program), name)
    say(f"seed            {audit.seed}")
    say(f"SHA-256 of seed {audit.seed_hash} ({'matches' if audit.seed_matches_hash else 'DOES NOT MATCH'})")
    say(f"tickets         {number(len(audit.tickets))}")
    for winner in audit.recomputed:
        say(f"winner {winner.rank}: {winner.member_id} (ticket {winner.ticket})")
    if not audit.verified:
        say("NOT VERIFIED: the recorded winners differ from the recomputation")
        raise typer.Exit(1)
    say("verified: the recorded winners are those the seed and the entries give")


def _print(view: RaffleView) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_row("raffle", Text(view.name))
    grid.add_row("prize", Text(view.prize_reward_id))
    grid.add_row("entry", f"{number(view.entry_cost)} points, at most {view.max_entries_per_member} per member")
    grid.add_row("draws at", view.draws_at.isoformat())
    grid.add_row("non-winners", "refunded" if view.refund_losers else "points spent")
    grid.add_row("tickets sold", number(view.tickets_sold))
    grid.add_row("seed SHA-256", view.seed_hash)
    grid.add_row("seed", view.seed or "secret until the draw")
    out.print(grid)
    if view.results:
        table = Table("rank", "member", "ticket", "prize code", title="Winners")
        for winner in view.results:
            table.add_row(str(winner.rank), Text(winner.member_id), winner.ticket, winner.prize_code or "")
        out.print(table)
