"""Calendar arithmetic in the program's time zone: cap periods and lot expiry dates."""

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from patron.domain.program import CapPeriod, ExpireAfter, ExpireEndOfPeriod, ExpiryPolicy


def period_key(period: CapPeriod, moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    if period is CapPeriod.DAY:
        return f"day:{local.date().isoformat()}"
    if period is CapPeriod.WEEK:
        year, week, _ = local.isocalendar()
        return f"week:{year}-W{week:02d}"
    if period is CapPeriod.MONTH:
        return f"month:{local.year}-{local.month:02d}"
    return "lifetime"


def add_months(moment: datetime, months: int) -> datetime:
    """Same day-of-month `months` later, clamped to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = moment.day
    if day > 28:  # every month has 28 days: only a later day may need clamping
        day = min(day, _days_in_month(year, month))
    if type(moment) is datetime and not moment.fold:
        # The same value as replace() gives, built positionally: replace's keywords cost twice as much.
        return datetime(year, month, day, moment.hour, moment.minute, moment.second, moment.microsecond, moment.tzinfo)
    return moment.replace(year=year, month=month, day=day)


@cache
def _days_in_month(year: int, month: int) -> int:
    following = datetime(year + month // 12, month % 12 + 1, 1)  # noqa: DTZ001 - only the day count is used
    return (following - timedelta(days=1)).day


def expires_at(
    policy: ExpiryPolicy, earned_at: datetime, zone: ZoneInfo, local: datetime | None = None
) -> datetime | None:
    """The first instant at which points earned at `earned_at` can no longer be spent (`local`: the same instant
    in `zone`, when the caller has it already)."""
    if isinstance(policy, ExpireAfter):
        if policy.days is not None:
            return earned_at + timedelta(days=policy.days)
        return add_months(earned_at.astimezone(zone) if local is None else local, policy.months or 0)
    if isinstance(policy, ExpireEndOfPeriod):
        local = add_months(earned_at.astimezone(zone) if local is None else local, policy.after_months)
        start_month = {"month": local.month, "quarter": (local.month - 1) // 3 * 3 + 1, "year": 1}[policy.period]
        length = {"month": 1, "quarter": 3, "year": 12}[policy.period]
        period_start = local.replace(month=start_month, day=1, hour=0, minute=0, second=0, microsecond=0)
        # Rebuilding from wall-clock fields lets zoneinfo pick the right UTC offset across DST changes.
        next_start = add_months(period_start, length)
        return datetime(next_start.year, next_start.month, 1, tzinfo=zone)
    return None


# When points earned at a moment expire, given the moment and the same moment in the program's time zone.
ExpiryRule = Callable[[datetime, datetime], datetime | None]


def expiry_rule(policy: ExpiryPolicy, zone: ZoneInfo) -> ExpiryRule:
    """`expires_at` for one policy and time zone, with the policy's kind and length looked up once: the engine
    asks it on every event that earns."""
    if isinstance(policy, ExpireAfter):
        if policy.days is not None:
            lasts = timedelta(days=policy.days)
            return lambda earned_at, _: earned_at + lasts
        months = policy.months or 0
        return lambda _, local: add_months(local, months)
    if isinstance(policy, ExpireEndOfPeriod):
        return lambda earned_at, local: expires_at(policy, earned_at, zone, local)
    return lambda _, __: None
