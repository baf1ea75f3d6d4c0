"""`patron keys`: API keys for the HTTP API. A token is shown once, when it is created; only its digest is kept."""

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from patron.cli.common import ProgramOption, database, err, out, program_id, say
from patron.services import keys
from patron.services.clock import utcnow
from patron.services.keys import Scope

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="What the key is for, e.g. 'checkout' or 'crm-sync'.")],
    scope: Annotated[
        list[Scope] | None,
        typer.Option("--scope", "-s", help="Repeat for several scopes; admin allows everything.", show_default=False),
    ] = None,
    program: ProgramOption = "default",
) -> None:
    """Create a key and print its token, once: it cannot be shown again."""
    with database() as db:
        the_program = program_id(db, program)
        key, token = db.run(lambda conn: keys.create(conn, the_program, name, set(scope or ()), now=utcnow()))
    out.print(token, markup=False, soft_wrap=True)  # alone on stdout, so `$(patron keys create ...)` captures it
    err.print(
        f"Created key {key.prefix} ({key.name}) for program {key.program!r} with scopes "
        f"{', '.join(sorted(key.scopes))}. The token above is shown only now: store it safely. "
        "Use it as `Authorization: Bearer <token>`.",
        markup=False,
        soft_wrap=True,
    )


@app.command("list")
def list_(program: ProgramOption = "default") -> None:
    """List keys: prefix, name, scopes, when created and revoked. Never a secret."""
    with database() as db, db.read() as conn:
        found = keys.list_keys(conn, program_id(db, program))
    table = Table("prefix", "name", "scopes", "created", "revoked", title=f"API keys of program {program!r}")
    for key in found:
        table.add_row(
            key.prefix,
            Text(key.name),  # Text: a name is shown as written, never read as Rich markup
            ", ".join(sorted(key.scopes)),
            key.created_at.isoformat(timespec="seconds"),
            key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
        )
    out.print(table)


@app.command()
def revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix, as `patron keys list` shows it.")],
    program: ProgramOption = "default",
) -> None:
    """Revoke a key: requests with it are refused from now on."""
    with database() as db:
        the_program = program_id(db, program)
        db.run(lambda conn: keys.revoke(conn, the_program, prefix, now=utcnow()))
    say(f"Revoked key {prefix}.")
