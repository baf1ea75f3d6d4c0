"""`patron referrals`: a member's referral code, a new member signing up with one, and the referrals a member
made with each one's status."""

from typing import Annotated

import typer
from pydantic import TypeAdapter, ValidationError
from rich.table import Table
from rich.text import Text

from patron.cli.common import BadInput, ProgramOption, database, err, out, program_id, say
from patron.domain.referrals import Fingerprint, IpAddress
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


@app.command("sign-up")
def sign_up(
    member_id: Annotated[
        str, typer.Argument(metavar="MEMBER", help="The new member, already imported or created.", show_default=False)
    ],
    code: Annotated[str, typer.Argument(metavar="CODE", help="The referral code they signed up with.")],
    ip: Annotated[
        str | None, typer.Option("--ip", help="The address they signed up from, for the burst check.")
    ] = None,
    fingerprint: Annotated[
        list[str] | None,
        typer.Option(
            "--fingerprint",
            help="A hashed payment or device fingerprint of the new member, never a raw one (repeat for several).",
            show_default=False,
        ),
    ] = None,
    program: ProgramOption = "default",
) -> None:
    """Record that a new member signed up with a referral code, as POST /v1/referrals does: pending (both sides
    are rewarded on their first qualifying purchase) or not eligible, and why."""
    fingerprints = [_checked(_FINGERPRINT, value, "--fingerprint") for value in fingerprint or ()]
    if len(fingerprints) > MAX_FINGERPRINTS:
        raise BadInput(f"at most {MAX_FINGERPRINTS}", field="--fingerprint")
    address = _checked(_IP, ip, "--ip") if ip is not None else None
    with database() as db:
        view = referrals.sign_up(
            db,
            ProgramCache(),
            program_id(db, program),
            member_id,
            code,
            ip=address,
            fingerprints=fingerprints,
            now=utcnow(),
        )
    if view.eligible:
        say(
            f"{view.referee_id} signed up with {view.referrer_id}'s code: {view.status.value}; both are rewarded "
            f"on {view.referee_id}'s first qualifying purchase."
        )
    else:
        say(f"{view.referee_id} signed up with {view.referrer_id}'s code: {view.status.value}: {view.reason}")


MAX_FINGERPRINTS = 20  # as the API
_FINGERPRINT: TypeAdapter[str] = TypeAdapter(Fingerprint)
_IP: TypeAdapter[str] = TypeAdapter(IpAddress)


def _checked(adapter: TypeAdapter[str], value: str, option: str) -> str:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise BadInput(f"{value!r}: {exc.errors()[0]['msg']}", field=option) from None


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
