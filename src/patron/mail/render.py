"""Turns a message's kind, language and context into a subject, a plain-text body and an HTML body.

HTML templates are autoescaped (a reward or tier name is merchant data and a friend's name is member data);
the plain-text ones are not, since nothing reads them as markup.
"""

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from patron.mail.i18n import Formatter, translations
from patron.mail.kinds import CONTEXTS, Category, MailKind


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class Letterhead:
    """What every message shows besides its own context."""

    program: str
    currency: str
    unsubscribe_url: str


@lru_cache(maxsize=8)
def environment(locale: str) -> Environment:
    env = Environment(
        loader=PackageLoader("patron.mail", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    # Whitespace inside {% trans %} is collapsed, so the catalog's message ids do not depend on line wrapping.
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    formatter = Formatter(locale)
    env.filters["points"] = formatter.points
    env.filters["number"] = formatter.number
    env.filters["date"] = formatter.date
    env.filters["money"] = formatter.money  # amount|money(currency)
    return env


def render(kind: MailKind, locale: str, context: dict[str, Any], letterhead: Letterhead) -> Rendered:
    """`context` is the JSON stored in the outbox; it is validated against the kind's context model again here."""
    env = environment(locale)
    ctx = CONTEXTS[kind].model_validate(context)
    values = {
        "ctx": ctx,
        "program": letterhead.program,
        "unsubscribe_url": letterhead.unsubscribe_url,
        "marketing": kind.category is Category.MARKETING,
        "html_lang": locale.replace("_", "-"),
        "currency": letterhead.currency,
    }
    subject = " ".join(env.get_template(f"{kind.value}.subject.txt").render(values).split())
    text = _tidy(env.get_template(f"{kind.value}.txt").render(values))
    html = env.get_template(f"{kind.value}.html").render(values, subject=subject)
    return Rendered(subject=subject, text=text, html=html)


def _tidy(text: str) -> str:
    """At most one blank line in a row, none at the ends: template conditionals leave gaps."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    tidied: list[str] = []
    for line in lines:
        if line or (tidied and tidied[-1]):
            tidied.append(line)
    return "\n".join(tidied) + "\n"
