"""`patron mail`: send what the mail outbox holds, see how much is waiting, queue the points summaries.

The worker does all of this on its own; these commands are for setups that run no worker, and for a look.
"""

from datetime import timedelta
from typing import Annotated

import typer

from patron.cli.common import database, fail, moment, number, say
from patron.mail import outbox
from patron.mail.delivery import DeliveryReport, deliver_pending
from patron.mail.i18n import resolve_locale
from patron.mail.kinds import MailKind
from patron.mail.render import Letterhead, render
from patron.mail.samples import SAMPLES
from patron.mail.smtp import MailNotConfigured
from patron.mail.summaries import queue_earned_summaries
from patron.settings import Settings

app = typer.Typer(help="Email to members: delivery, the outbox, the points summaries.", no_args_is_help=True)

NowOption = Annotated[
    str | None,
    typer.Option("--now", help="Run as of this ISO 8601 time (with a zone) instead of now.", show_default=False),
]


@app.command("send-pending")
def send_pending(
    now: NowOption = None,
    batch: Annotated[int, typer.Option(min=1, help="Messages per SMTP session.")] = 100,
) -> None:
    """Send every message that is due, over the SMTP server of PATRON_SMTP_*."""
    settings = Settings()
    at = moment(now, "--now")
    total = DeliveryReport()
    with database() as db:
        while True:
            try:
                report = deliver_pending(db, settings, now=at, limit=batch)
            except MailNotConfigured as exc:
                fail("settings", str(exc))
            if report.disabled:
                with db.read() as conn:
                    waiting = outbox.counts(conn).get(outbox.Status.QUEUED, 0)
                fail("PATRON_SMTP_HOST", f"not set: nothing sent ({number(waiting)} messages queued)")
            for name in ("sent", "retried", "failed", "suppressed"):
                setattr(total, name, getattr(total, name) + getattr(report, name))
            total.errors += report.errors
            # A batch that only retried means the server is unreachable: the next batch would fare no better.
            if report.handled < batch or report.sent + report.failed + report.suppressed == 0:
                break
    for error in dict.fromkeys(total.errors):
        say(f"SMTP: {error}")
    say(
        f"{number(total.sent)} sent, {number(total.retried)} to retry later, {number(total.failed)} failed, "
        f"{number(total.suppressed)} not sent (no consent or no address)"
    )


@app.command()
def status() -> None:
    """How many messages are queued, sent, failed and suppressed."""
    with database() as db, db.read() as conn:
        counts = outbox.counts(conn)
    for name in (outbox.Status.QUEUED, outbox.Status.SENT, outbox.Status.FAILED, outbox.Status.SUPPRESSED):
        say(f"{name}: {number(counts.get(name, 0))}")


@app.command()
def preview(
    kind: Annotated[MailKind, typer.Argument(help="The message.", show_default=False)],
    locale: Annotated[str, typer.Option(help="A member's locale: en, pl, zh-Hans, pl-PL…")] = "en",
    html: Annotated[bool, typer.Option("--html", help="The HTML part instead of the text.")] = False,
) -> None:
    """Show a message with made-up numbers, as a member with this locale would get it."""
    language = resolve_locale(locale)
    letterhead = Letterhead("Patron Records", "USD", f"{Settings().public_url.rstrip('/')}/v1/unsubscribe?token=…")
    rendered = render(kind, language, SAMPLES[kind].model_dump(mode="json"), letterhead)
    say(f"Subject: {rendered.subject}\n")
    say(rendered.html if html else rendered.text)


@app.command()
def summaries(
    now: NowOption = None,
    days: Annotated[int, typer.Option(min=1, help="The length of the period that ended at midnight UTC.")] = 7,
) -> None:
    """Queue the points-earned summary of the period that just ended, for members who agreed to marketing."""
    at = moment(now, "--now")
    end = at.replace(hour=0, minute=0, second=0, microsecond=0)
    with database() as db:
        run = queue_earned_summaries(db, start=end - timedelta(days=days), end=end, now=at)
    say(f"{number(run.queued)} summaries queued ({number(run.members)} members with consent looked at)")
