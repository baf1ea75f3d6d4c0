"""Bulk imports of members and orders from rows of text (CSV files, the CDNOW demo data).

An import is two passes. `check_members` / `check_orders` read every row and write nothing: a file with a bad
row (a cell that does not parse, an order of a member who does not exist, one event id for two different
orders) is refused whole, so fixing it and running again is all a merchant has to do. Then `import_members` /
`import_orders` write. Orders go through exactly the path a merchant's events take (`events.ingest_batch`, a
batch per transaction), so an import earns what the live API would and is idempotent the same way: every order
has an event id, and a re-run replays stored receipts instead of earning twice. Members are written in batches
too (see `import_members` for why not one `members.upsert` per row). No Typer here: the CLI only wires these
functions to files, progress bars and messages.
"""

import csv
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, select, text
from sqlalchemy.exc import IntegrityError

from patron.domain.events import ExternalId, Purchase
from patron.domain.members import MemberProfile
from patron.services import collector, import_split, programs
from patron.services import events as event_service
from patron.services import members as member_service
from patron.services.errors import Invalid, ServiceError
from patron.services.program_cache import ProgramCache
from patron.services.views import EventReceipt
from patron.store import members as member_rows
from patron.store.bulk import allocate_ids, insert_rows, rows_by_key
from patron.store.database import Database
from patron.store.sets import text_in
from patron.store.tables import balances, members

BATCH_SIZE = 1_000  # events per transaction: large enough to amortise the commit, small enough to hold in memory
SHOWN_REJECTIONS = 5  # the first few rejected rows are reported with their reasons; the rest are counted

ORDER_COLUMNS = ("event_id", "member_id", "order_id", "occurred_at", "total", "channel", "store")
ORDER_REQUIRED = frozenset({"member_id", "order_id", "occurred_at", "total"})
MEMBER_COLUMNS = ("member_id", "email", "phone", "birthday", "locale")
MEMBER_REQUIRED = frozenset({"member_id"})
ATTRIBUTE_PREFIX = "attributes."  # members: a column `attributes.tier` fills the attribute `tier`
# As the API's events: a clock a little ahead is tolerated; a later time is a wrong date (and year 9999 would
# overflow the calendar when the lot's expiry is computed).
CLOCK_SKEW = timedelta(minutes=15)

Row = tuple[int, Mapping[str, str]]  # (line number in the source, the row's cells by column name)
Progress = Callable[[int], None]  # told how many more rows are done


class _MemberId(BaseModel):
    """Validates a member id with the API's rules, and names the column when it fails."""

    member_id: ExternalId


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    key: str  # the row's event id or member id, as far as it could be read
    field: str | None  # the column (or event field) at fault
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" ({self.key})" if self.key else "")
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


@dataclass
class ImportReport:
    """accepted: rows that changed something; replayed: rows already imported (re-running changes nothing)."""

    rows: int = 0
    accepted: int = 0
    replayed: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)  # the first SHOWN_REJECTIONS of them
    points: int = 0  # orders: points earned by the accepted rows, pending ones included
    pending_points: int = 0
    processes: int = 1  # orders: how many processes imported them (import_split)

    def reject(self, rejection: Rejection) -> None:
        self.rejected += 1
        if len(self.rejections) < SHOWN_REJECTIONS:
            self.rejections.append(rejection)

    def merge(self, other: "ImportReport") -> None:
        """Adds the report of another part of the same file (another process's rows, or the rows after them)."""
        self.rows += other.rows
        self.accepted += other.accepted
        self.replayed += other.replayed
        self.rejected += other.rejected
        self.points += other.points
        self.pending_points += other.pending_points
        # Each part kept its own first rejections, so the file's first ones by line are among them.
        self.rejections = sorted(self.rejections + other.rejections, key=lambda r: r.line)[:SHOWN_REJECTIONS]


# --- reading ---------------------------------------------------------------------------------------------------


def check_columns(
    found: Sequence[str], *, known: Sequence[str], required: frozenset[str], prefix: str | None = None
) -> None:
    """Refuses a header with unknown, missing or repeated columns, naming them: a misspelt column must not be
    silently ignored (it would import every row without, say, its store)."""
    unknown = [c for c in found if c not in known and not (prefix and c.startswith(prefix) and len(c) > len(prefix))]
    missing = sorted(required - set(found))
    repeated = sorted({c for c in found if found.count(c) > 1})
    problems = []
    if unknown:
        allowed = ", ".join(known) + (f", {prefix}<name>" if prefix else "")
        problems.append(f"unknown column(s) {', '.join(map(repr, unknown))} (known: {allowed})")
    if missing:
        problems.append(f"missing column(s) {', '.join(map(repr, missing))}")
    if repeated:
        problems.append(f"repeated column(s) {', '.join(map(repr, repeated))}")
    if problems:
        raise Invalid("; ".join(problems), field="columns")


def read_csv(path: Path, *, known: Sequence[str], required: frozenset[str], prefix: str | None = None) -> Iterator[Row]:
    """The file's rows with their line numbers, after checking the header. Cells are stripped; empty cells are
    left out, so an optional column may be blank on some rows."""
    handle = path.open(encoding="utf-8-sig", newline="")  # -sig: spreadsheets often write a byte-order mark
    reader = csv.reader(handle)
    try:
        header = [c.strip() for c in next(reader, [])]
    except (csv.Error, UnicodeDecodeError) as exc:
        handle.close()
        raise Invalid(f"{path.name} is not a UTF-8 CSV file: {exc}", field="file") from exc
    if not header:
        handle.close()
        raise Invalid(f"{path.name} is empty: the first line must name the columns", field="file")
    try:
        check_columns(header, known=known, required=required, prefix=prefix)
    except Invalid:
        handle.close()
        raise
    return _rows(handle, reader, header)


def _rows(handle: Any, reader: Any, header: list[str]) -> Iterator[Row]:
    with handle:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue  # blank lines, often at the end of a file
            if len(cells) > len(header):
                # Reading on would shift values into the wrong columns (an unquoted "12,50" makes two cells).
                raise Invalid(
                    f"line {reader.line_num} has {len(cells)} cells but the header names {len(header)} columns "
                    "(a value with a comma needs double quotes)",
                    field="file",
                )
            # reader.line_num is the line the row ended on, which names the right line in the file.
            yield (
                reader.line_num,
                {name: cell.strip() for name, cell in zip(header, cells, strict=False) if cell.strip()},
            )


def count_rows(path: Path) -> int:
    """Lines after the header: the total for a progress bar (a quoted cell spanning lines makes it an estimate)."""
    with path.open("rb") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


# --- orders ----------------------------------------------------------------------------------------------------


def order_event_id(order_id: str) -> str:
    """The event id of an order row that names none: derived from the order, so a re-run sends the same id."""
    return f"order:{order_id}"


def parse_order(cells: Mapping[str, str]) -> Purchase:
    """A row to the purchase event a merchant would send. Raises ValidationError naming the bad field."""
    values: dict[str, Any] = {name: cells[name] for name in ORDER_COLUMNS if name in cells}
    if "event_id" not in values and "order_id" in values:
        values["event_id"] = order_event_id(values["order_id"])
    return Purchase.model_validate(values)


def check_orders(
    db: Database,
    program_id: int,
    rows: Iterable[Row],
    *,
    now: datetime,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> ImportReport:
    """Finds the rows `import_orders` could not import, writing nothing: cells that do not make a purchase, times
    in the future or before the program's first version, members who do not exist, and an event id given to two
    different rows. `rejected` is 0 when the file is fit to import (a concurrent writer could still refuse a row
    then; the import reports it)."""
    report = ImportReport()
    with db.read() as conn:
        versions = programs.list_versions(conn, program_id)
    first_version = min((v.effective_from for v in versions), default=None)
    # event id -> hash of the first row's event: a different hash proves a different event (an equal one could
    # still hide a difference, which the import itself then refuses as an idempotency conflict)
    first_rows: dict[str, int] = {}
    iterator = iter(rows)
    while batch := list(islice(iterator, batch_size)):
        parsed: list[tuple[int, str, Purchase]] = []
        for line, cells in batch:
            key = _order_key(cells)
            try:
                event = parse_order(cells)
            except ValidationError as exc:
                report.reject(_from_validation(line, key, exc))
                continue
            if (refusal := _refuse_future(event, now)) or (refusal := _refuse_unjudged(event, first_version)):
                report.reject(Rejection(line, key, "occurred_at", refusal))
                continue
            digest = hash(event)
            if first_rows.setdefault(event.event_id, digest) != digest:
                report.reject(Rejection(line, key, "event_id", "an earlier row has this event id with other values"))
                continue
            parsed.append((line, key, event))
        with db.read() as conn:
            unknown = _unknown_members(conn, program_id, {event.member_id for _, _, event in parsed})
        for line, key, event in parsed:
            if event.member_id in unknown:
                report.reject(Rejection(line, key, "member_id", f"no member {event.member_id!r}: import members first"))
        report.rows += len(batch)
        if progress is not None:
            progress(len(batch))
    return report


def _refuse_future(event: Purchase, now: datetime) -> str | None:
    if event.occurred_at > now + CLOCK_SKEW:
        return f"{event.occurred_at.isoformat()} is in the future"
    return None


def _refuse_unjudged(event: Purchase, first_version: datetime | None) -> str | None:
    if first_version is None:
        return "the program has no published version: publish one first"
    if event.occurred_at < first_version:
        first = first_version.isoformat()
        return f"no program version was in force at {event.occurred_at.isoformat()} (the first is from {first})"
    return None


def _order_key(cells: Mapping[str, str]) -> str:
    """How a rejection names an order row: by what the file says (its event id, else its order id)."""
    return cells.get("event_id") or cells.get("order_id", "")


def _unknown_members(conn: Connection, program_id: int, member_ids: set[str]) -> set[str]:
    wanted = sorted(member_ids)
    found = conn.execute(
        select(members.c.external_id).where(
            members.c.program_id == program_id, text_in(conn, members.c.external_id, wanted)
        )
    ).scalars()
    return member_ids - set(found)


def import_orders(
    db: Database,
    program_id: int,
    rows: Iterable[Row],
    *,
    now: datetime,
    cache: ProgramCache | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
    jobs: int | None = None,
) -> ImportReport:
    """Ingests every row as a purchase event, `batch_size` events per transaction, in `jobs` processes (None:
    as many as `import_split.jobs_for` finds worth it; SQLite always takes one)."""
    processes = import_split.jobs_for(db, jobs)
    if processes == 1:
        return _import_orders_here(db, program_id, rows, now=now, cache=cache, batch_size=batch_size, progress=progress)
    report = ImportReport()

    def import_here(db: Database, some: Iterable[Row], told: Progress | None) -> ImportReport:
        return _import_orders_here(db, program_id, some, now=now, cache=cache, batch_size=batch_size, progress=told)

    split = import_split.plan(db, program_id, processes)
    import_split.run(db, split, rows, import_here, report, progress, batch_size=batch_size)
    return report


def _import_orders_here(
    db: Database,
    program_id: int,
    rows: Iterable[Row],
    *,
    now: datetime,
    cache: ProgramCache | None,
    batch_size: int,
    progress: Progress | None,
) -> ImportReport:
    cache = cache or ProgramCache()
    report = ImportReport()
    with collector.fewer_collections():
        iterator = iter(rows)
        while batch := list(islice(iterator, batch_size)):
            parsed: list[tuple[int, Purchase]] = []
            for line, cells in batch:
                try:
                    event = parse_order(cells)
                except ValidationError as exc:
                    report.reject(_from_validation(line, _order_key(cells), exc))
                    continue
                if refusal := _refuse_future(event, now):
                    report.reject(Rejection(line, _order_key(cells), "occurred_at", refusal))
                else:
                    parsed.append((line, event))
            if parsed:
                _ingest(db, cache, program_id, parsed, now, report)
            report.rows += len(batch)
            if progress is not None:
                progress(len(batch))
    return report


def _ingest(
    db: Database,
    cache: ProgramCache,
    program_id: int,
    parsed: list[tuple[int, Purchase]],
    now: datetime,
    report: ImportReport,
) -> None:
    outcomes = event_service.ingest_batch_reporting_replays(
        db, cache, program_id, [event for _, event in parsed], now=now
    )
    for (line, event), outcome in zip(parsed, outcomes, strict=True):
        if isinstance(outcome, ServiceError):
            report.reject(Rejection(line, event.event_id, outcome.field, outcome.detail))
        elif outcome[1]:  # received before, or earlier in this file: its first receipt again, nothing earned
            report.replayed += 1
        else:
            _count_earned(report, outcome[0])


def _count_earned(report: ImportReport, receipt: EventReceipt) -> None:
    report.accepted += 1
    report.points += receipt.points
    report.pending_points += receipt.pending_points


# --- members ---------------------------------------------------------------------------------------------------


def parse_member(cells: Mapping[str, str]) -> tuple[str, MemberProfile]:
    """A row to (member id, profile). Raises ValidationError naming the bad column."""
    member_id = _MemberId.model_validate({"member_id": cells.get("member_id")}).member_id
    attributes = {k.removeprefix(ATTRIBUTE_PREFIX): v for k, v in cells.items() if k.startswith(ATTRIBUTE_PREFIX)}
    profile = {name: cells[name] for name in MEMBER_COLUMNS[1:] if name in cells}
    return member_id, MemberProfile.model_validate({**profile, "attributes": attributes})


def check_members(rows: Iterable[Row], *, progress: Progress | None = None) -> ImportReport:
    """Finds the rows `import_members` could not import, writing nothing (`rejected` is 0 when there are none)."""
    report = ImportReport()
    for line, cells in rows:
        try:
            parse_member(cells)
        except ValidationError as exc:
            report.reject(_from_validation(line, cells.get("member_id", ""), exc))
        report.rows += 1
        if progress is not None and report.rows % BATCH_SIZE == 0:
            progress(BATCH_SIZE)
    if progress is not None:
        progress(report.rows % BATCH_SIZE)
    return report


def import_members(
    db: Database,
    program_id: int,
    rows: Iterable[Row],
    *,
    now: datetime,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> ImportReport:
    """Creates members, or replaces the profile of those whose row differs; identical rows change nothing. What a
    file cannot state (a member's time zone, their marketing consent) is kept.

    `members.upsert` costs a transaction and a full read-back per member (about 50 s for CDNOW's 23,570 on
    SQLite), so rows are written a batch per transaction: one query finds who exists, new members and their zero
    balances are inserted with one statement each, their ids drawn beforehand (`store.bulk`). A batch that loses
    a race with another writer (a unique key taken meanwhile) is redone a row at a time through `members.upsert`.
    """
    report = ImportReport()
    with collector.fewer_collections():
        iterator = iter(rows)
        while batch := list(islice(iterator, batch_size)):
            parsed: list[tuple[int, str, MemberProfile]] = []
            for line, cells in batch:
                try:
                    member_id, profile = parse_member(cells)
                    parsed.append((line, member_id, profile))
                except ValidationError as exc:
                    report.reject(_from_validation(line, cells.get("member_id", ""), exc))
            if parsed:
                try:
                    accepted, replayed = db.run(lambda conn: _write_members(conn, program_id, parsed, now))  # noqa: B023
                except IntegrityError:
                    accepted, replayed = _members_one_by_one(db, program_id, parsed, now)
                report.accepted += accepted
                report.replayed += replayed
            report.rows += len(batch)
            if progress is not None:
                progress(len(batch))
    if report.accepted and db.engine.dialect.name == "postgresql":
        # Fresh statistics for the rows just written: without them PostgreSQL plans every look-up of a member
        # as if the table were still empty (a scan of the program's members), until autovacuum gets round to it.
        db.run(lambda conn: conn.execute(text("ANALYZE members, balances")))
    return report


def _write_members(
    conn: Connection, program_id: int, parsed: list[tuple[int, str, MemberProfile]], now: datetime
) -> tuple[int, int]:
    ids = sorted({member_id for _, member_id, _ in parsed})
    stored = {
        row.external_id: (row.id, _stored_profile(row))
        for row in rows_by_key(
            conn,
            [
                members.c.id,
                members.c.external_id,
                members.c.email,
                members.c.phone,
                members.c.birthday,
                members.c.locale,
                members.c.timezone,
                members.c.attributes,
            ],
            scope=members.c.program_id,
            scope_id=program_id,
            key=members.c.external_id,
            values=ids,
        )
    }
    known: dict[str, MemberProfile] = {external_id: profile for external_id, (_, profile) in stored.items()}
    final: dict[str, MemberProfile] = {}
    accepted = replayed = 0
    for _, member_id, row_profile in parsed:
        earlier = known.get(member_id)
        profile = _keeping_time_zone(row_profile, earlier)
        if earlier == profile:
            replayed += 1
            continue
        accepted += 1
        known[member_id] = final[member_id] = profile
    new = [(m, p) for m, p in final.items() if m not in stored]
    if new:
        # Ids drawn first, so members and their zero balances go in as one JSON parameter each (store.bulk).
        created = allocate_ids(conn, members, len(new))
        insert_rows(
            conn,
            members,
            [
                {"id": i, "program_id": program_id, "external_id": m, **member_rows.new_profile_columns(p, now)}
                for i, (m, p) in zip(created, new, strict=True)
            ],
        )
        insert_rows(conn, balances, [{"member_id": i, "available": 0, "pending": 0, "debt": 0} for i in created])
    changed = sorted(stored[m][0] for m in final if m in stored)
    member_rows.lock_many(conn, changed)  # the lock every change to a member takes first
    for member_id, profile in final.items():
        if member_id in stored:
            member_rows.update_profile(conn, stored[member_id][0], profile, now)
    return accepted, replayed


def _stored_profile(row: Any) -> MemberProfile:
    """What a members file could say of a stored member (marketing consent it cannot state: an update keeps it)."""
    return MemberProfile(
        email=row.email,
        phone=row.phone,
        birthday=row.birthday,
        locale=row.locale,
        timezone=row.timezone,
        attributes=row.attributes,
    )


def _keeping_time_zone(profile: MemberProfile, stored: MemberProfile | None) -> MemberProfile:
    """A members file has no time zone column: a member's own zone, set over the API, survives a changed row."""
    if stored is None or stored.timezone == profile.timezone:
        return profile
    return profile.model_copy(update={"timezone": stored.timezone})


def _members_one_by_one(
    db: Database, program_id: int, parsed: list[tuple[int, str, MemberProfile]], now: datetime
) -> tuple[int, int]:
    accepted = replayed = 0
    for _, member_id, row_profile in parsed:
        with db.read() as conn:
            row = member_rows.find(conn, program_id, member_id)
        stored = None if row is None else _stored_profile(row)
        profile = _keeping_time_zone(row_profile, stored)
        if stored == profile:
            replayed += 1
        else:
            member_service.upsert(db, program_id, member_id, profile, now=now)
            accepted += 1
    return accepted, replayed


# --- shared ----------------------------------------------------------------------------------------------------


def _from_validation(line: int, key: str, exc: ValidationError) -> Rejection:
    """The first error of a row, named by its column (`attributes.tier`, not attributes -> tier)."""
    error = exc.errors()[0]
    column = ".".join(str(part) for part in error["loc"]) or None
    return Rejection(line, key, column, error["msg"])
