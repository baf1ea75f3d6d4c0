"""`patron rewards`: the catalog in force, with the stock left and who may redeem each reward and from when."""

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from patron.cli.common import ProgramOption, database, number, out, program_id, say
from patron.services import rewards
from patron.services.clock import utcnow
from patron.services.program_cache import ProgramCache
from patron.services.rewards import RewardView

app = typer.Typer(help="The rewards catalog.", no_args_is_help=True)


@app.command("list")
def list_(
    member_id: Annotated[
        str | None, typer.Option("--member", help="Say why this member may not redeem each reward yet.")
    ] = None,
    program: ProgramOption = "default",
) -> None:
    """The rewards in force now: cost, stock left, and tier rules (tier only, early access)."""
    with database() as db, db.read() as conn:
        found = rewards.catalog(conn, ProgramCache(), program_id(db, program), member_id=member_id, now=utcnow())
    if found.program_version is None:
        say(f"No program version of {program!r} is in force: the catalog is empty.")
        return
    columns = ["reward", "kind", "cost", "left", "who may redeem"] + (["for " + member_id] if member_id else [])
    table = Table(*columns, title=f"Rewards of {program!r}, version {found.program_version}")
    for reward in found.rewards:
        row = [
            Text(f"{reward.id}: {reward.name}"),
            reward.kind.value,
            number(reward.cost),
            "" if reward.remaining is None else number(reward.remaining),
            Text(who_may_redeem(reward)),
        ]
        if member_id:
            row.append(Text(reward.refusal or "may redeem"))
        table.add_row(*row)
    out.print(table)


def who_may_redeem(reward: RewardView) -> str:
    """The tier rules as a member portal would show them: "Gold from 2026-04-01; everyone from 2026-04-10"."""
    eligible = "everyone" if reward.min_tier_name is None else f"{reward.min_tier_name} and above"
    if reward.available_from is not None:
        eligible += f" from {reward.available_from.date().isoformat()}"
    early = [f"{a.tier_name} from {a.available_from.date().isoformat()}" for a in reward.early_access]
    return "; ".join([*early, eligible])
