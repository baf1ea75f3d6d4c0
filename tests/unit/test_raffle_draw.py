"""The raffle draw as a function: deterministic, one prize per member, and checkable by hand."""

import hashlib
import hmac

from patron.domain.raffles import Ticket, commitment, draw, tickets_of

SEED = "ab" * 32


def test_tickets_are_ordered_by_entry_then_number():
    tickets = tickets_of([(7, "bob", 2), (3, "ann", 1)])
    assert [t.label for t in tickets] == ["3:0", "7:0", "7:1"]
    assert [t.member_id for t in tickets] == ["ann", "bob", "bob"]


def test_the_same_seed_and_entries_give_the_same_winners():
    tickets = tickets_of([(i, f"m{i % 40}", 3) for i in range(1, 200)])
    assert draw(SEED, tickets, 5) == draw(SEED, list(tickets), 5)
    assert draw(SEED, tickets, 5) != draw("cd" * 32, tickets, 5)


def test_a_member_wins_at_most_once_and_winners_are_capped_by_members():
    tickets = tickets_of([(1, "ann", 50), (2, "bob", 1)])
    winners = draw(SEED, tickets, 5)
    assert sorted(t.member_id for t in winners) == ["ann", "bob"]


def test_the_algorithm_is_what_the_documentation_says():
    tickets = tickets_of([(1, "ann", 2), (2, "bob", 1), (3, "cy", 4)])

    def by_hand(ticket: Ticket) -> int:
        mac = hmac.new(SEED.encode(), ticket.label.encode(), hashlib.sha256).digest()
        return int.from_bytes(mac, "big")

    expected, seen = [], set()
    for ticket in sorted(tickets, key=by_hand):
        if ticket.member_id not in seen:
            expected.append(ticket)
            seen.add(ticket.member_id)
    assert draw(SEED, tickets, 2) == expected[:2]
    assert commitment(SEED) == hashlib.sha256(SEED.encode()).hexdigest()
