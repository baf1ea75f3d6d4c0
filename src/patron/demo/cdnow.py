"""The CDNOW purchase history (real customers, 1997-98), read from the `lifetimes` wheel as import rows.

The file is never copied into this repository (its redistribution terms are unclear): it is found inside the
installed wheel. Each row becomes the rows a merchant's own CSV would have, so the demo goes through the same
import path (`services.imports`) as `patron import members` and `patron import orders`.
"""

import importlib.metadata
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from patron.services.errors import NotFound
from patron.services.imports import Row

DISTRIBUTION = "lifetimes"
MASTER = "CDNOW_master.txt"  # 69,659 purchases by 23,570 customers
SAMPLE = "CDNOW_sample.txt"  # 6,919 purchases by 2,357 of those customers, with all of their purchases
# CDNOW was a store in Pennsylvania; the file has dates only, so every purchase happens at noon local time.
ZONE = ZoneInfo("America/New_York")
PURCHASE_HOUR = 12
FIRST_DAY = date(1997, 1, 1)
LAST_DAY = date(1998, 6, 30)


@dataclass(frozen=True, slots=True)
class CdnowPurchase:
    line: int
    customer: str  # the file's zero-padded customer id, e.g. "00001"
    day: str  # YYYYMMDD
    cds: int
    dollars: str  # kept as text: it becomes a Decimal in the event, never a float

    @property
    def member_id(self) -> str:
        return member_id(self.customer)


def member_id(customer: str) -> str:
    return f"cdnow-{customer}"


def locate(*, sample: bool = False) -> Path:
    """The data file inside the installed `lifetimes` wheel."""
    name = SAMPLE if sample else MASTER
    try:
        distribution = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise NotFound(
            "the CDNOW data ships in the lifetimes wheel: pip install --no-deps lifetimes==0.11.3 (make install does)",
            field="lifetimes",
        ) from exc
    path = Path(str(distribution.locate_file(f"lifetimes/datasets/{name}")))
    if not path.is_file():
        raise NotFound(f"{name} is not in the installed lifetimes package ({path})", field="lifetimes")
    return path


def read(path: Path) -> list[CdnowPurchase]:
    """Both layouts: the master file (customer, date, CDs, dollars; with a header line) and the sample
    (customer, the sample's own customer number, date, CDs, dollars; no header)."""
    purchases = []
    with path.open(encoding="ascii") as handle:
        for line, text in enumerate(handle, start=1):
            cells = text.split()
            if not cells or not cells[0].isdigit():
                continue  # the header
            if len(cells) == 5:
                del cells[1]
            customer, day, cds, dollars = cells
            purchases.append(CdnowPurchase(line, customer, day, int(cds), dollars))
    return purchases


def member_rows(purchases: list[CdnowPurchase]) -> list[Row]:
    """One row per customer, at the line of their first purchase; CDNOW knows nothing else about them."""
    first: dict[str, int] = {}
    for p in purchases:
        first.setdefault(p.customer, p.line)
    return [(line, {"member_id": member_id(customer)}) for customer, line in first.items()]


def order_rows(purchases: list[CdnowPurchase], *, shift: timedelta = timedelta(0)) -> list[Row]:
    """One order per purchase. A customer can buy twice on a day (1,774 times in the master file), so the order
    id numbers the customer's purchases of the day: the same purchase gets the same id in the sample and the
    master file (the sample holds all of its customers' rows, in the same order), and importing both is safe.

    `shift` (whole days) moves every purchase in time; the order ids keep the file's own dates."""
    seen: Counter[tuple[str, str]] = Counter()
    rows: list[Row] = []
    for p in purchases:
        seen[(p.customer, p.day)] += 1
        # Adding days to an aware datetime keeps its wall time: every purchase stays at noon local time.
        at = datetime(int(p.day[:4]), int(p.day[4:6]), int(p.day[6:]), PURCHASE_HOUR, tzinfo=ZONE) + shift
        cells = {
            "member_id": p.member_id,
            "order_id": f"{p.member_id}:{p.day}:{seen[(p.customer, p.day)]}",
            "occurred_at": at.isoformat(),
            "total": p.dollars,  # 80 purchases are $0.00: valid orders that earn 0 points
        }
        rows.append((p.line, cells))
    return rows
