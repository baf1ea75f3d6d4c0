"""The unsubscribe link of every email: public (the token is the credential), no API key.

GET shows a page asking to confirm, and changes nothing: mail scanners and link previews fetch links on their
own, and must not unsubscribe anyone. POST unsubscribes, both from that page's button and from the one-click
button mail clients show for the List-Unsubscribe-Post header (RFC 8058).

Pages for members, not part of the merchants' API: they answer in HTML and stay out of the OpenAPI document.
"""

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from patron.api.runtime import RuntimeDep
from patron.mail import consent
from patron.mail.i18n import resolve_locale
from patron.mail.render import environment
from patron.settings import Settings

router = APIRouter(tags=["email"], include_in_schema=False)

Token = Annotated[str, Query(max_length=200, description="The signed token of the link in the email.")]


def _page(state: str, locale: str | None, action: str = "", status: int = 200) -> HTMLResponse:
    resolved = resolve_locale(locale)
    html = (
        environment(resolved)
        .get_template("unsubscribe_page.html")
        .render(state=state, action=action, html_lang=resolved.replace("_", "-"))
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _secret(request: Request) -> str | None:
    settings = getattr(request.app.state, "settings", None)
    if not isinstance(settings, Settings) or settings.secret_key is None:
        return None
    return settings.secret_key.get_secret_value()


@router.get("/v1/unsubscribe", response_class=HTMLResponse)
async def confirm_page(request: Request, runtime: RuntimeDep, token: Token) -> HTMLResponse:
    """The page an unsubscribe link opens: it asks to confirm."""
    secret = _secret(request)
    if secret is None:
        return _page("invalid", None, status=404)
    try:
        member = await run_in_threadpool(consent.member_of, runtime.database, token, secret)
    except consent.InvalidToken:
        return _page("invalid", None, status=404)
    return _page("confirm", member.locale, action=f"?{urlencode({'token': token})}")


@router.post("/v1/unsubscribe", response_class=HTMLResponse)
async def unsubscribe(request: Request, runtime: RuntimeDep, token: Token) -> HTMLResponse:
    """Withdraws marketing consent."""
    secret = _secret(request)
    if secret is None:
        return _page("invalid", None, status=404)
    try:
        member = await run_in_threadpool(consent.unsubscribe, runtime.database, token, secret, now=runtime.now())
    except consent.InvalidToken:
        return _page("invalid", None, status=404)
    return _page("done", member.locale)
