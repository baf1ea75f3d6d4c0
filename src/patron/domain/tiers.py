"""Tiers: qualification over a window, upgrades the moment a threshold is met, downgrades at a window's end.

Pure functions of (tiers, progress, moment): the engine calls them on every event, the tier review job and the
member read model call them with the clock's time, and all three agree.
"""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from patron.domain.calendar import add_months
from patron.domain.program import (
    DowngradeAtWindowEnd,
    ProgramDocument,
    Reward,
    TierLevel,
    TierMetric,
    Tiers,
    TierWindow,
)
from patron.domain.progress import Progress, Tally
from patron.domain.values import quick_init

KEPT_MONTHS = 25  # enough for a rolling window reviewed at the end of a grace period of up to a year
# Enum members looked up once: reading one off its class costs more than the comparison on a hot path.
_LIFETIME, _CALENDAR_YEAR = TierWindow.LIFETIME, TierWindow.CALENDAR_YEAR
_POINTS, _VISITS = TierMetric.POINTS, TierMetric.VISITS


@quick_init
@dataclass(frozen=True, slots=True)
class TierChange:
    from_tier: str | None
    to_tier: str | None
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a member stands: their tier, what they have in the current window, and what the next tier needs."""

    level: TierLevel | None
    since: datetime | None
    qualifying: Decimal
    next_level: TierLevel | None
    missing: Decimal | None
    message: str


def month_key(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local.year:04d}-{local.month:02d}"


def add_tally(progress: Progress, moment: datetime, zone: ZoneInfo, tally: Tally) -> Progress:
    """Counts `tally` in the month of `moment`, and forgets months no window can reach any more."""
    months, lifetime = tallied(progress, moment, zone, tally)
    return replace(progress, months=months, lifetime=lifetime)


def tallied(
    progress: Progress, moment: datetime, zone: ZoneInfo, tally: Tally, local: datetime | None = None
) -> tuple[dict[str, Tally], Tally]:
    """The months and lifetime tallies with `tally` counted in the month of `moment` (`local`: the same moment in
    `zone`, when the caller has it already)."""
    local = moment.astimezone(zone) if local is None else local
    return counted(progress, local, tally.points, tally.spend, tally.visits)


def counted(
    progress: Progress, local: datetime, points: int, spend: Decimal, visits: int
) -> tuple[dict[str, Tally], Tally]:
    """As `tallied`, for the engine: the amounts given as they are rather than as a Tally built to be added."""
    index = local.year * 12 + local.month - 1  # months since year 0, as add_months counts
    key = _month_key(index)
    months = progress.months
    if key not in months:
        # A new month: the moment to forget the months no window reaches any more, without building the dates.
        cut = _month_key(index - KEPT_MONTHS)
        kept = {k: v for k, v in months.items() if k >= cut}
        kept[key] = Tally(points, spend, visits)
    else:
        kept = dict(months)
        before = kept[key]
        kept[key] = Tally(before.points + points, before.spend + spend, before.visits + visits)
    lifetime = progress.lifetime
    return kept, Tally(lifetime.points + points, lifetime.spend + spend, lifetime.visits + visits)


# "2026-03" per month counted from year 0, formatted once: formatting costs more than the rest of a tally.
_MONTH_KEYS: dict[int, str] = {}


def _month_key(index: int) -> str:
    key = _MONTH_KEYS.get(index)
    if key is None:
        key = f"{index // 12:04d}-{index % 12 + 1:02d}"
        if len(_MONTH_KEYS) < 10_000:  # bounded: a few centuries of months
            _MONTH_KEYS[index] = key
    return key


def measure(tally: Tally, metric: TierMetric) -> Decimal:
    if metric is TierMetric.POINTS:
        return Decimal(tally.points)
    if metric is TierMetric.SPEND:
        return tally.spend
    return Decimal(tally.visits)


def _sum(progress: Progress, keys: set[str]) -> Tally:
    total = Tally()
    for key in keys:
        if key in progress.months:
            total = total.plus(progress.months[key])
    return total


def _months_before(moment_local: datetime, count: int, *, including: bool) -> set[str]:
    first = moment_local.replace(day=1)
    offsets = range(0, count) if including else range(1, count + 1)
    return {f"{m.year:04d}-{m.month:02d}" for m in (add_months(first, -i) for i in offsets)}


def window_value(
    tiers: Tiers, progress: Progress, at: datetime, zone: ZoneInfo, local: datetime | None = None
) -> Decimal:
    """What counts towards a tier now: the current calendar year, the last 12 months (this one included) or all."""
    metric = tiers.qualify_on
    window = tiers.window
    if window is _LIFETIME:
        return measure(progress.lifetime, metric)
    local = at.astimezone(zone) if local is None else local
    if window is _CALENDAR_YEAR:
        year = _month_key(local.year * 12)[:4]
        if metric is _POINTS:  # the common case in one loop: this runs on every purchase
            points = 0
            for k, v in progress.months.items():
                if k[:4] == year:
                    points += v.points
            return Decimal(points)
        inside = [v for k, v in progress.months.items() if k[:4] == year]
    else:
        keys = _months_before(local, 12, including=True)
        inside = [v for k, v in progress.months.items() if k in keys]
    # Whole numbers are summed as ints: Decimal arithmetic costs more than the rest of a tier check.
    if metric is _POINTS:
        return Decimal(sum([v.points for v in inside]))
    if metric is _VISITS:
        return Decimal(sum([v.visits for v in inside]))
    return sum((v.spend for v in inside), Decimal(0))


def _window_name(tiers: Tiers, at: datetime, zone: ZoneInfo) -> str:
    if tiers.window is TierWindow.CALENDAR_YEAR:
        return f"in {at.astimezone(zone).year}"
    if tiers.window is TierWindow.ROLLING_12_MONTHS:
        return "in the last 12 months"
    return "in all"


def amount(tiers: Tiers, value: Decimal, currency: str) -> str:
    if tiers.qualify_on is TierMetric.SPEND:
        return f"{value.quantize(Decimal('0.01'))} {currency}"
    unit = "points" if tiers.qualify_on is TierMetric.POINTS else "visits"
    whole = int(value)
    return f"{whole} {unit[:-1] if whole == 1 else unit}"


def upgrade(
    tiers: Tiers, progress: Progress, at: datetime, zone: ZoneInfo, currency: str, local: datetime | None = None
) -> tuple[Progress, list[TierChange]]:
    """Raises the tier as soon as the current window reaches a higher threshold (levels may be skipped)."""
    levels = tiers.levels
    rank = tiers.rank(progress.tier)
    if rank == len(levels):
        return progress, []  # already at the top
    value = window_value(tiers, progress, at, zone, local)
    # Thresholds rise from one level to the next: a higher tier is reached exactly when the next one is.
    if value < levels[rank].threshold:
        return progress, []
    reached = levels[rank]
    for level in levels[rank + 1 :]:
        if value >= level.threshold:
            reached = level
    reason = (
        f"{amount(tiers, value, currency)} {_metric_verb(tiers)} {_window_name(tiers, at, zone)} "
        f"reached {reached.name} ({amount(tiers, reached.threshold, currency)})"
    )
    # A new tier is judged at the end of the window it was reached in: the years before are no longer due.
    reviewed = f"{at.astimezone(zone).year - 1:04d}" if tiers.window is TierWindow.CALENDAR_YEAR else None
    changed = replace(progress, tier=reached.id, tier_since=at, reviewed_through=reviewed)
    return changed, [TierChange(progress.tier, reached.id, reason, at)]


def _metric_verb(tiers: Tiers) -> str:
    return {TierMetric.POINTS: "earned", TierMetric.SPEND: "spent", TierMetric.VISITS: "made"}[tiers.qualify_on]


def review(
    tiers: Tiers, progress: Progress, at: datetime, zone: ZoneInfo, currency: str
) -> tuple[Progress, list[TierChange]]:
    """Downgrades due by `at`: each window that ended (plus the grace period) below the tier's threshold costs one
    level. Windows already reviewed are not reviewed again, so running it twice changes nothing."""
    policy = tiers.downgrade
    if (
        not isinstance(policy, DowngradeAtWindowEnd)
        or tiers.window is TierWindow.LIFETIME
        or progress.tier is None
        or progress.tier_since is None
    ):
        return progress, []
    grace = timedelta(days=policy.grace_days)
    changes: list[TierChange] = []
    for _ in range(100):  # bounded: a member silent for decades is reviewed a hundred windows at most
        level = tiers.level(progress.tier)
        if level is None or progress.tier_since is None:
            break
        window = _next_window_end(tiers, progress, zone)
        end, label, keys, key_text = window
        if end + grace > at:
            break
        ended = measure(_sum(progress, keys), tiers.qualify_on)
        # Already back above the threshold in the window under way (the grace period is for that): keep the tier.
        current = window_value(tiers, progress, at if at < end + grace else end + grace, zone)
        reviewed = replace(progress, reviewed_through=key_text)
        if ended >= level.threshold or current >= level.threshold:
            progress = reviewed
            continue
        rank = tiers.rank(level.id)
        lower = tiers.levels[rank - 2].id if rank >= 2 else None
        reason = (
            f"{amount(tiers, ended, currency)} {_metric_verb(tiers)} {label}; {level.name} needs "
            f"{amount(tiers, level.threshold, currency)}: down one level after {policy.grace_days} days' grace"
        )
        changes.append(TierChange(level.id, lower, reason, end + grace))
        progress = replace(reviewed, tier=lower, tier_since=end + grace if lower is None else progress.tier_since)
    return progress, changes


def _next_window_end(tiers: Tiers, progress: Progress, zone: ZoneInfo) -> tuple[datetime, str, set[str], str]:
    """The end of the first window not yet reviewed: (end, its description, its month keys, its review key)."""
    assert progress.tier_since is not None
    since = progress.tier_since.astimezone(zone)
    if tiers.window is TierWindow.CALENDAR_YEAR:
        year = max(int(progress.reviewed_through) + 1 if progress.reviewed_through else since.year, since.year)
        keys = {k for k in progress.months if k.startswith(f"{year:04d}-")}
        return datetime(year + 1, 1, 1, tzinfo=zone), f"in {year}", keys, f"{year:04d}"
    # Rolling windows are reviewed on each anniversary of reaching the tier, over the 12 months before it.
    previous = datetime.fromisoformat(progress.reviewed_through) if progress.reviewed_through else since
    end_local = add_months(previous.astimezone(zone), 12)
    end = datetime(
        end_local.year, end_local.month, end_local.day, end_local.hour, end_local.minute, end_local.second, tzinfo=zone
    )
    keys = _months_before(end_local, 12, including=False)
    return end, "in the 12 months before " + end_local.date().isoformat(), keys, end.isoformat()


def standing(tiers: Tiers, progress: Progress, at: datetime, zone: ZoneInfo, currency: str) -> Standing:
    """The member's tier at `at` (downgrades due applied), and the distance to the next one."""
    progress, _ = review(tiers, progress, at, zone, currency)
    level = tiers.level(progress.tier)
    value = window_value(tiers, progress, at, zone)
    rank = tiers.rank(progress.tier)
    next_level = tiers.levels[rank] if rank < len(tiers.levels) else None
    if next_level is None:
        assert level is not None
        return Standing(level, progress.tier_since, value, None, None, f"{level.name}: the highest tier")
    missing = max(next_level.threshold - value, Decimal(0))
    message = f"{amount(tiers, missing, currency)} to {next_level.name}"
    return Standing(level, progress.tier_since, value, next_level, missing, message)


def tier_at(document: ProgramDocument, progress: Progress, at: datetime) -> str | None:
    """The member's tier at `at`, with the downgrades due by then applied."""
    if document.tiers is None:
        return None
    progress, _ = review(document.tiers, progress, at, ZoneInfo(document.timezone), document.currency)
    return progress.tier


def reward_refusal(document: ProgramDocument, reward: Reward, tier: str | None, at: datetime) -> str | None:
    """Why a member of `tier` may not redeem `reward` at `at` (a tier-only reward, or one not yet open to them)."""
    ladder = document.tiers
    rank = ladder.rank(tier) if ladder is not None else 0
    if reward.min_tier is not None and ladder is not None and rank < ladder.rank(reward.min_tier):
        needed = ladder.level(reward.min_tier)
        name = needed.name if needed is not None else reward.min_tier
        return f"{reward.name!r} is for {name} members and above"
    opens = reward.available_from
    for access in reward.early_access:
        if ladder is not None and rank >= ladder.rank(access.tier):
            opens = access.available_from if opens is None else min(opens, access.available_from)
    if opens is not None and at < opens:
        return f"{reward.name!r} opens to you on {opens.isoformat()}"
    return None
