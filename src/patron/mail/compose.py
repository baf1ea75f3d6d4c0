"""A rendered message as an email: headers for threading, deduplication and one-click unsubscribe."""

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from urllib.parse import urlencode

from patron.mail.render import Rendered


def unsubscribe_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/v1/unsubscribe?{urlencode({'token': token})}"


def compose(
    rendered: Rendered,
    *,
    outbox_id: int,
    sender: str,
    recipient: str,
    locale: str,
    unsubscribe: str,
    now: datetime,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(now)
    # The same id on every attempt: a receiving system that got a message twice (a worker died between sending
    # and recording it) can tell it is one message.
    message["Message-ID"] = f"<patron-mail-{outbox_id}@{_domain(sender)}>"
    message["Auto-Submitted"] = "auto-generated"
    # RFC 2369 and RFC 8058: mail clients show an unsubscribe button that POSTs to the link, no page needed.
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    # After the body: turning the message multipart moves every Content-* header set before into the first part.
    message["Content-Language"] = locale.replace("_", "-")
    return message


def _domain(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2] or "localhost"
