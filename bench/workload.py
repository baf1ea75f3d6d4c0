"""What the ingest benchmarks send: a program under the demo document, members, an API key, and purchases."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from patron.demo import cdnow
from patron.domain.events import Purchase
from patron.services import imports, keys, programs
from patron.services.keys import Scope
from patron.store.database import Database

DEMO_PROGRAM_FILE = Path(cdnow.__file__).parent / "program.yaml"
EFFECTIVE_FROM = datetime(2000, 1, 1, tzinfo=UTC)
# Purchases happen on one day, well after the program is in force and in the past of every clock.
OCCURRED_AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
SPREAD = 7_919  # a prime: consecutive events go to members far apart, as real traffic would


@dataclass(frozen=True)
class Workload:
    program_id: int
    members: int
    token: str  # an API key with the events scope

    def member_of(self, n: int) -> str:
        return f"m{n * SPREAD % self.members + 1}"

    def purchase(self, tag: str, n: int) -> dict[str, str]:
        """The n-th purchase of a run named `tag`: a unique event and order, 1 to 200 dollars."""
        return {
            "type": "purchase",
            "event_id": f"{tag}-{n}",
            "member_id": self.member_of(n),
            "order_id": f"{tag}-order-{n}",
            "occurred_at": (OCCURRED_AT + timedelta(seconds=n % 86_400)).isoformat(),
            "total": str(Decimal(1 + n % 20_000) / 100),
        }

    def purchase_json(self, tag: str, n: int) -> bytes:
        return json.dumps(self.purchase(tag, n)).encode()

    def batch_json(self, tag: str, n: int, size: int) -> bytes:
        return json.dumps({"events": [self.purchase(tag, n * size + i) for i in range(size)]}).encode()

    def purchases(self, tag: str, first: int, count: int) -> list[Purchase]:
        return [Purchase.model_validate(self.purchase(tag, n)) for n in range(first, first + count)]


def prepare(db: Database, *, members: int) -> Workload:
    """A program with the demo document in force, `members` members with ids m1..mN, and an events key."""
    now = datetime.now(UTC)
    program_id = programs.create_program(db, "bench", now=now)
    document = programs.read_document(DEMO_PROGRAM_FILE)
    programs.publish(db, program_id, document, actor="bench", now=now, effective_from=EFFECTIVE_FROM)
    rows = [(i, {"member_id": f"m{i}"}) for i in range(1, members + 1)]
    report = imports.import_members(db, program_id, rows, now=now)
    assert report.accepted == members, report
    _, token = db.run(lambda conn: keys.create(conn, program_id, "bench", {Scope.EVENTS}, now=now))
    return Workload(program_id, members, token)
