"""The verifiable draw of a points raffle. Pure: the same seed and entries always give the same winners.

The algorithm, so anyone can check a draw with the published values:

1. At creation the raffle publishes `commitment = SHA-256(seed)` (hex), where `seed` is 64 random hexadecimal
   characters kept secret until the draw; SHA-256 is taken over the seed's ASCII bytes.
2. Every entry bought is a ticket labelled "<entry id>:<n>" (n = 0 .. tickets-1 of that purchase). The ticket list
   is ordered by entry id, then n.
3. Each ticket's score is HMAC-SHA256(key = seed's ASCII bytes, message = label's ASCII bytes), read as a
   big-endian integer. Tickets are sorted by score (ties, impossible in practice, by their place in the list).
4. Winners are taken from the top of that order, skipping tickets of members who already won, until K members
   have won (or no tickets are left). A member wins at most once; more tickets mean better odds.

At the draw the seed is revealed: anyone can recompute 1 and 3 and get the same winners.
"""

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

# The terms of a raffle, shared by the program document's `raffles` section and the API's ad-hoc creation.
Winners = Annotated[int, Field(strict=True, gt=0, le=10_000, description="how many members win")]
EntryCost = Annotated[int, Field(strict=True, gt=0, le=1_000_000_000, description="points per entry")]
MaxEntries = Annotated[int, Field(strict=True, gt=0, le=100_000, description="entries one member may hold")]


@dataclass(frozen=True, slots=True)
class Ticket:
    entry_id: int
    number: int
    member_id: str

    @property
    def label(self) -> str:
        return f"{self.entry_id}:{self.number}"


def commitment(seed: str) -> str:
    return hashlib.sha256(seed.encode("ascii")).hexdigest()


def tickets_of(entries: Sequence[tuple[int, str, int]]) -> list[Ticket]:
    """(entry id, member id, tickets bought) to the ordered ticket list."""
    return [
        Ticket(entry_id, number, member_id) for entry_id, member_id, count in sorted(entries) for number in range(count)
    ]


def score(seed: str, ticket: Ticket) -> int:
    digest = hmac.new(seed.encode("ascii"), ticket.label.encode("ascii"), hashlib.sha256).digest()
    return int.from_bytes(digest, "big")


def draw(seed: str, tickets: Sequence[Ticket], winners: int) -> list[Ticket]:
    """The winning tickets in rank order, one per member."""
    ranked = sorted(enumerate(tickets), key=lambda placed: (score(seed, placed[1]), placed[0]))
    chosen: list[Ticket] = []
    won: set[str] = set()
    for _, ticket in ranked:
        if len(chosen) == winners:
            break
        if ticket.member_id not in won:
            chosen.append(ticket)
            won.add(ticket.member_id)
    return chosen
