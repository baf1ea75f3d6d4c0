"""`patron program`: check, publish and show program documents (YAML or JSON)."""

from typing import Annotated

import typer
import yaml
from pydantic import ValidationError

from patron.cli.common import (
    ExistingFile,
    ProgramOption,
    actor,
    database,
    error_line,
    moment,
    program_id,
    say,
    validation_errors,
)
from patron.services import programs
from patron.services.clock import utcnow
from patron.services.errors import NotFound

app = typer.Typer(help="Check, publish and show program documents.", no_args_is_help=True)


@app.command()
def validate(file: ExistingFile) -> None:
    """Check a program document without publishing it: prints "valid", or each error with its path (exit 1).

    It does not open the database: a document can be checked anywhere, in CI for instance.
    """
    try:
        document = programs.read_document(file)
    except ValidationError as exc:
        for path, message in validation_errors(exc):
            error_line(path, message)
        raise typer.Exit(1) from None
    sections = [f"{len(document.rules)} rules", f"{len(document.rewards)} rewards"]
    if document.coupon_batches:
        sections.append(f"coupon batches {', '.join(b.id for b in document.coupon_batches)}")
    if document.raffles:
        sections.append(f"raffles {', '.join(r.id for r in document.raffles)}")
    say(f"{file}: valid ({document.name!r}: {', '.join(sections)})")


@app.command()
def publish(
    file: ExistingFile,
    effective_from: Annotated[
        str | None,
        typer.Option(help="ISO 8601 time with a zone; events from then on are judged by this version. Default: now."),
    ] = None,
    program: ProgramOption = "default",
) -> None:
    """Publish a program document as a new, immutable version.

    Coupon batches and raffles it declares that do not exist yet are made now: their codes, a raffle's seed and
    the seed's SHA-256 (printed: publish it)."""
    document = programs.read_document(file)
    start = moment(effective_from, "--effective-from") if effective_from is not None else None
    with database() as db:
        published = programs.publish(
            db, program_id(db, program), document, actor=actor(), now=utcnow(), effective_from=start
        )
    say(
        f"Published version {published.version} of program {program!r}, "
        f"in force from {published.effective_from.isoformat()}."
    )
    for made in published.made:
        say(f"Made {made}.")


@app.command()
def show(
    version: Annotated[int | None, typer.Option(help="Default: the latest version.", show_default=False)] = None,
    program: ProgramOption = "default",
) -> None:
    """Print a published version as YAML (which `patron program publish` accepts back)."""
    with database() as db, db.read() as conn:
        versions = programs.list_versions(conn, program_id(db, program))
    if not versions:
        raise NotFound(f"program {program!r} has no published version yet", field="version")
    chosen = versions[-1] if version is None else next((v for v in versions if v.version == version), None)
    if chosen is None:
        raise NotFound(f"program {program!r} has versions 1 to {versions[-1].version}, not {version}", field="version")
    header = (
        f"# program {chosen.program!r}, version {chosen.version} of {versions[-1].version}\n"
        f"# in force from {chosen.effective_from.isoformat()}; "
        f"published {chosen.published_at.isoformat()} by {chosen.published_by}\n"
    )
    body = yaml.safe_dump(
        chosen.document.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True
    )
    typer.echo(header + body, nl=False)
