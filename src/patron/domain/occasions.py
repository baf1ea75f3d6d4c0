"""Birthdays and sign-up anniversaries: whether one is due on a member's local date, and for which year."""

from datetime import date, timedelta

from patron.domain.program import Occasion


def _on_year(day: date, year: int) -> date:
    """The same day in `year`; 29 February is celebrated on 28 February in other years."""
    if day.month == 2 and day.day == 29:
        try:
            return day.replace(year=year)
        except ValueError:
            return date(year, 2, 28)
    return day.replace(year=year)


def due_year(occasion: Occasion, day: date, today: date, *, first_year: int | None = None) -> int | None:
    """The year of the occasion to grant on `today` (the member's local date), or None.

    The grant is due from `days_before` days before the date to the date itself, so a job that missed a day
    still grants it; the year keys it, so granting twice in that window is refused by the store.
    `first_year`: no occasion before it (an anniversary needs a year to have passed).
    """
    upcoming = _on_year(day, today.year)
    if upcoming < today:
        upcoming = _on_year(day, today.year + 1)
    if first_year is not None and upcoming.year <= first_year:
        return None
    if upcoming - today > timedelta(days=occasion.days_before):
        return None
    return upcoming.year
