"""Languages of email: which catalog a member's locale picks, and numbers, money and dates in that language.

Catalogs are the committed .po files, compiled in memory on first use: a clean checkout, a wheel and an
editable install all work without a build step that could be forgotten.
"""

from datetime import date
from decimal import Decimal
from functools import lru_cache
from gettext import NullTranslations
from importlib import resources
from io import BytesIO

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import Translations

DEFAULT_LOCALE = "en"
# English is the language of the templates themselves; the others have a catalog under locales/.
TRANSLATED_LOCALES = ("pl", "zh_Hans")
SUPPORTED_LOCALES = (DEFAULT_LOCALE, *TRANSLATED_LOCALES)
_TRADITIONAL_CHINESE_TERRITORIES = {"TW", "HK", "MO"}


def resolve_locale(tag: str | None) -> str:
    """The supported locale for a member's BCP 47 / POSIX tag ("pl-PL", "zh_CN", "zh-Hans"), else English.
    Traditional Chinese gets English rather than a script its reader did not choose."""
    if not tag:
        return DEFAULT_LOCALE
    try:
        parsed = Locale.parse(tag.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return DEFAULT_LOCALE
    if parsed.language == "pl":
        return "pl"
    if parsed.language == "zh":
        script = parsed.script or ("Hant" if parsed.territory in _TRADITIONAL_CHINESE_TERRITORIES else "Hans")
        return "zh_Hans" if script == "Hans" else DEFAULT_LOCALE
    return DEFAULT_LOCALE


def catalog_path(locale: str) -> resources.abc.Traversable:
    return resources.files("patron.mail") / "locales" / locale / "LC_MESSAGES" / "messages.po"


@lru_cache(maxsize=len(SUPPORTED_LOCALES))
def translations(locale: str) -> NullTranslations:
    """Gettext translations for a supported locale; English is the templates' own text."""
    if locale == DEFAULT_LOCALE:
        return NullTranslations()
    with catalog_path(locale).open("rb") as source:
        catalog = read_po(source, locale=locale)
    compiled = BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out: an unchecked translation falls back to English
    compiled.seek(0)
    return Translations(fp=compiled)


class Formatter:
    """Numbers, points, money and dates written as a reader of `locale` expects them."""

    def __init__(self, locale: str) -> None:
        self.locale = locale
        self._translations = translations(locale)

    def number(self, value: int | Decimal) -> str:
        return format_decimal(value, locale=self.locale)

    def points(self, value: int) -> str:
        """ "1 point", "5 points"; in Polish "1 punkt", "2 punkty", "5 punktów" (the catalog's plural forms)."""
        template = self._translations.ngettext("%(num)s point", "%(num)s points", abs(value))
        return template % {"num": self.number(value)}

    def money(self, amount: Decimal, currency: str) -> str:
        return format_currency(amount, currency, locale=self.locale)

    def date(self, value: date) -> str:
        return format_date(value, format="long", locale=self.locale)
