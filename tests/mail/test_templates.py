"""Every message renders in every language, HTML escapes what merchants and members typed, and each one
carries the unsubscribe link."""

from typing import Any

import pytest

from patron.mail.i18n import SUPPORTED_LOCALES
from patron.mail.kinds import CONTEXTS, Category, MailKind
from patron.mail.render import Letterhead, render
from patron.mail.samples import SAMPLES as SHIPPED_SAMPLES

LINK = "http://patron.example/v1/unsubscribe?token=1.2.abc"

SAMPLES: dict[MailKind, dict[str, Any]] = {kind: c.model_dump(mode="json") for kind, c in SHIPPED_SAMPLES.items()}


def test_there_is_a_sample_for_every_kind():
    assert set(SAMPLES) == set(MailKind) == set(CONTEXTS)


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("kind", list(MailKind))
def test_every_kind_renders_in_every_language_with_an_unsubscribe_link(kind, locale):
    rendered = render(kind, locale, SAMPLES[kind], Letterhead("Kawiarnia", "PLN", LINK))
    assert rendered.subject
    assert "\n" not in rendered.subject
    assert LINK in rendered.text
    assert f'href="{LINK}"' in rendered.html
    assert "{{" not in rendered.text + rendered.html
    assert "%(" not in rendered.text + rendered.html


def test_the_footer_says_why_the_member_gets_the_message():
    letterhead = Letterhead("Kawiarnia", "PLN", LINK)
    birthday = render(MailKind.BIRTHDAY, "en", SAMPLES[MailKind.BIRTHDAY], letterhead)
    receipt = render(MailKind.REWARD_REDEEMED, "en", SAMPLES[MailKind.REWARD_REDEEMED], letterhead)
    assert MailKind.BIRTHDAY.category is Category.MARKETING
    assert "you agreed to hear from Kawiarnia" in birthday.text
    assert MailKind.REWARD_REDEEMED.category is Category.TRANSACTIONAL
    assert "a message about your Kawiarnia membership" in receipt.text


def test_html_escapes_names_but_text_keeps_them_as_typed():
    context = SAMPLES[MailKind.REWARD_REDEEMED] | {"reward_name": "<script>alert(1)</script> & cake"}
    rendered = render(MailKind.REWARD_REDEEMED, "en", context, Letterhead("A&B <Club>", "EUR", LINK + "&x=1"))
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; cake" in rendered.html
    assert "A&amp;B &lt;Club&gt;" in rendered.html
    assert 'href="http://patron.example/v1/unsubscribe?token=1.2.abc&amp;x=1"' in rendered.html
    assert "You redeemed <script>alert(1)</script> & cake for 5 points." in rendered.text


def test_the_points_summary_in_polish():
    rendered = render(
        MailKind.POINTS_EARNED_SUMMARY,
        "pl",
        SAMPLES[MailKind.POINTS_EARNED_SUMMARY],
        Letterhead("Kawiarnia", "PLN", LINK),
    )
    assert rendered.subject == "Twoje punkty od 2 listopada 2026 do 8 listopada 2026"
    assert (
        "W okresie od 2 listopada 2026 do 8 listopada 2026 dodaliśmy do Twojego konta 25 punktów "
        "za zakupy o wartości 250,00\N{NO-BREAK SPACE}zł." in rendered.text
    )
    assert "Stan Twojego konta: 1\N{NO-BREAK SPACE}025 punktów." in rendered.text


# Chinese text uses full-width punctuation: RUF001 (ambiguous characters) is off where the tests quote it.
def test_program_changes_list_what_changes_and_from_when():
    rendered = render(
        MailKind.PROGRAM_CHANGED, "zh_Hans", SAMPLES[MailKind.PROGRAM_CHANGED], Letterhead("咖啡馆", "CNY", LINK)
    )
    assert rendered.subject == "咖啡馆条款变更通知"
    assert "新条款（第 2 版）自2027年1月1日起生效。" in rendered.text  # noqa: RUF001
    assert "- 新增奖励：Mug，需 300 积分。" in rendered.text  # noqa: RUF001
    assert "- Coffee 现需 122 积分（此前为 100 积分）。" in rendered.text  # noqa: RUF001
    assert "- 积分有效期规则有所调整。" in rendered.text
