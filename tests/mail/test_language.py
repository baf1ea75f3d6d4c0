"""Languages: the member's locale picks the catalog, and numbers, points, money and dates read naturally in it."""

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

import patron.mail
from patron.mail.i18n import TRANSLATED_LOCALES, Formatter, catalog_path, resolve_locale

MAIL_PACKAGE = Path(patron.mail.__file__).parent


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("pl", "pl"),
        ("pl-PL", "pl"),
        ("pl_PL", "pl"),
        ("zh", "zh_Hans"),
        ("zh-CN", "zh_Hans"),
        ("zh-Hans", "zh_Hans"),
        ("zh_Hans_SG", "zh_Hans"),
        ("zh-TW", "en"),  # Traditional script: not offered, English rather than the wrong script
        ("zh-Hant", "en"),
        ("en-GB", "en"),
        ("de-DE", "en"),
        ("not a locale", "en"),
        (None, "en"),
    ],
)
def test_the_members_locale_picks_a_language_with_english_as_fallback(tag, expected):
    assert resolve_locale(tag) == expected


@pytest.mark.parametrize(
    ("points", "polish"),
    [
        (1, "1 punkt"),
        (2, "2 punkty"),
        (4, "4 punkty"),
        (5, "5 punktów"),
        (11, "11 punktów"),
        (12, "12 punktów"),
        (14, "14 punktów"),
        (21, "21 punktów"),
        (22, "22 punkty"),
        (25, "25 punktów"),
        (104, "104 punkty"),
        (112, "112 punktów"),
        (0, "0 punktów"),
    ],
)
def test_polish_points_take_the_right_plural_form(points, polish):
    assert Formatter("pl").points(points) == polish


def test_points_in_english_and_chinese():
    assert [Formatter("en").points(n) for n in (1, 2, 1500)] == ["1 point", "2 points", "1,500 points"]
    assert [Formatter("zh_Hans").points(n) for n in (1, 2, 1500)] == ["1 积分", "2 积分", "1,500 积分"]


def test_large_numbers_are_grouped_the_polish_way():
    assert Formatter("pl").points(12345) == "12\N{NO-BREAK SPACE}345 punktów"


def test_money_and_dates_follow_the_locale():
    amount = Decimal("1234.50")
    assert Formatter("en").money(amount, "EUR") == "€1,234.50"
    assert Formatter("pl").money(amount, "PLN") == "1\N{NO-BREAK SPACE}234,50\N{NO-BREAK SPACE}zł"
    assert Formatter("zh_Hans").money(amount, "CNY") == "¥1,234.50"
    day = date(2026, 12, 24)
    assert Formatter("en").date(day) == "December 24, 2026"
    assert Formatter("pl").date(day) == "24 grudnia 2026"
    assert Formatter("zh_Hans").date(day) == "2026年12月24日"


def _extracted_messages() -> set[str]:
    with (MAIL_PACKAGE / "babel.cfg").open() as config:
        methods, options = parse_mapping_cfg(config)
    found = set()
    for _, _, message, _, _ in extract_from_dir(str(MAIL_PACKAGE), methods, options):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


@pytest.mark.parametrize("locale", TRANSLATED_LOCALES)
def test_every_text_of_every_template_is_translated(locale):
    """A sentence added to a template without a translation would go out in English to Polish and Chinese
    readers; an unchecked (fuzzy) one is not used at all. Update with pybabel (see patron/mail/__init__.py)."""
    with catalog_path(locale).open("rb") as source:
        catalog = read_po(source, locale=locale)
    translated = {
        (m.id[0] if isinstance(m.id, tuple) else m.id): m for m in catalog if m.id and not m.fuzzy and all(m.string)
    }
    needed = _extracted_messages()
    assert needed - set(translated) == set(), "untranslated"
    assert set(translated) - needed == set(), "the catalog has messages no template uses any more"


@pytest.mark.parametrize("locale", TRANSLATED_LOCALES)
def test_translations_keep_every_placeholder(locale):
    with catalog_path(locale).open("rb") as source:
        catalog = read_po(source, locale=locale)
    for message in catalog:
        if not message.id:
            continue
        source_text = message.id[0] if isinstance(message.id, tuple) else message.id
        wanted = set(re.findall(r"%\((\w+)\)s", source_text))
        for translation in message.string if isinstance(message.string, tuple) else (message.string,):
            assert set(re.findall(r"%\((\w+)\)s", translation)) == wanted, (locale, source_text, translation)
