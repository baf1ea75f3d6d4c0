"""`patron import members|orders FILE.csv`: every row checked before anything is written, then imported through
the events path; a second run changes nothing."""

import io

from rich.console import Console

from patron.cli import common
from patron.domain.members import MemberProfile
from patron.services import members
from patron.services.clock import utcnow
from patron.store.tables import events
from patron.store.tables import members as member_table
from tests.cli.conftest import Cli, count, snapshot

MEMBERS = """\
member_id,email,birthday,attributes.store
ann,ann@example.com,1990-04-01,soho
bob,,,
"""
ORDERS = """\
member_id,order_id,occurred_at,total,store
ann,o1,2024-03-01T12:00:00Z,120.00,soho
ann,o2,2024-03-02T12:00:00+08:00,9.99,
bob,o3,2024-03-03T12:00:00Z,0.00,soho
"""


def _balance(cli: Cli, member_id: str) -> tuple[int, int]:
    with cli.db.read() as conn:
        balance = members.view(conn, 1, member_id, now=utcnow()).balance
    return balance.available, balance.pending


def test_members_then_orders_earn_what_the_program_says(shop: Cli):
    imported = shop.ok("import", "members", shop.file("members.csv", MEMBERS))
    assert "Members: 2 rows: 2 accepted, 0 already imported, 0 rejected" in imported.stdout
    with shop.db.read() as conn:
        ann = members.view(conn, 1, "ann", now=utcnow())
    assert ann.email == "ann@example.com"
    assert ann.birthday.isoformat() == "1990-04-01"
    assert ann.attributes == {"store": "soho"}

    orders = shop.ok("import", "orders", shop.file("orders.csv", ORDERS))
    assert "Orders: 3 rows: 3 accepted, 0 already imported, 0 rejected" in orders.stdout
    # 120 + a 50-point big-basket bonus, then 9; the $0.00 order is valid and earns nothing.
    assert "They earned 179 points (179 of them pending)" in orders.stdout
    assert _balance(shop, "ann") == (0, 179)  # the 14-day return window
    shop.ok("activate")
    assert _balance(shop, "ann") == (179, 0)
    assert _balance(shop, "bob") == (0, 0)


def test_running_an_import_again_changes_nothing(shop: Cli):
    members_csv, orders_csv = shop.file("members.csv", MEMBERS), shop.file("orders.csv", ORDERS)
    shop.ok("import", "members", members_csv)
    shop.ok("import", "orders", orders_csv)
    before = snapshot(shop.db)

    assert "2 rows: 0 accepted, 2 already imported" in shop.ok("import", "members", members_csv).stdout
    again = shop.ok("import", "orders", orders_csv)
    assert "3 rows: 0 accepted, 3 already imported" in again.stdout
    assert "earned" not in again.stdout
    assert snapshot(shop.db) == before


def test_a_file_with_bad_rows_is_refused_whole(shop: Cli):
    shop.ok("import", "members", shop.file("members.csv", MEMBERS))
    before = snapshot(shop.db)
    bad = ORDERS + "ann,o4,2024-03-04T12:00:00Z,12.3.4,\nghost,o5,2024-03-05T12:00:00Z,5.00,\n"
    result = shop("import", "orders", shop.file("orders.csv", bad))
    assert result.exit_code == 1
    assert "line 5 (o4): total:" in result.stderr
    assert "line 6 (o5): member_id: no member 'ghost': import members first" in result.stderr
    assert "Nothing was imported: 2 of 5 rows cannot be." in result.stderr
    assert snapshot(shop.db) == before  # not even the three good rows


def test_one_event_id_for_two_different_rows_is_refused(shop: Cli):
    shop.ok("import", "members", shop.file("members.csv", MEMBERS))
    twice = (
        "event_id,member_id,order_id,occurred_at,total\n"
        "e1,ann,o1,2024-03-01T12:00:00Z,10\n"
        "e1,ann,o2,2024-03-01T12:00:00Z,10\n"
    )
    result = shop("import", "orders", shop.file("orders.csv", twice))
    assert result.exit_code == 1
    assert "line 3 (e1): event_id: an earlier row has this event id with other values" in result.stderr
    assert count(shop.db, events) == 0


def test_a_time_without_a_zone_is_refused(shop: Cli):
    shop.ok("import", "members", shop.file("members.csv", MEMBERS))
    result = shop(
        "import",
        "orders",
        shop.file("orders.csv", "member_id,order_id,occurred_at,total\nann,o1,2024-03-01 12:00,10\n"),
    )
    assert result.exit_code == 1
    assert "line 2 (o1): occurred_at:" in result.stderr
    assert count(shop.db, events) == 0


def test_bad_member_rows_are_named_and_nothing_is_written(shop: Cli):
    bad = MEMBERS + "carol,carol@example.com,1990-02-30,\n,nobody@example.com,,\n"
    result = shop("import", "members", shop.file("members.csv", bad))
    assert result.exit_code == 1
    assert "line 4 (carol): birthday:" in result.stderr
    assert "line 5: member_id:" in result.stderr
    assert count(shop.db, member_table) == 0


def test_the_header_must_name_known_columns(shop: Cli):
    result = shop("import", "orders", shop.file("orders.csv", "member_id,order_id,occurred_at,totl\n"))
    assert result.exit_code == 1
    assert "error: columns: unknown column(s) 'totl'" in result.stderr
    assert "missing column(s) 'total'" in result.stderr


def test_a_row_with_more_cells_than_columns_is_refused(shop: Cli):
    shop.ok("import", "members", shop.file("members.csv", MEMBERS))
    shifted = "member_id,order_id,occurred_at,total\nann,o1,2024-03-01T12:00:00Z,12,50\n"
    result = shop("import", "orders", shop.file("orders.csv", shifted))
    assert result.exit_code == 1
    assert "error: file: line 2 has 5 cells but the header names 4 columns" in result.stderr
    assert count(shop.db, events) == 0


def test_an_empty_file_is_refused(shop: Cli):
    result = shop("import", "members", shop.file("members.csv", ""))
    assert result.exit_code == 1
    assert "error: file: members.csv is empty" in result.stderr


def test_times_the_program_cannot_judge_are_refused(shop: Cli):
    shop.ok("import", "members", shop.file("members.csv", MEMBERS))
    times = (
        "member_id,order_id,occurred_at,total\n"
        "ann,o1,2999-01-01T00:00:00Z,10\n"  # a wrong date: the API refuses it too
        "ann,o2,1980-01-01T00:00:00Z,10\n"  # before the program's first version (1990)
    )
    result = shop("import", "orders", shop.file("orders.csv", times))
    assert result.exit_code == 1
    assert "line 2 (o1): occurred_at: 2999-01-01T00:00:00+00:00 is in the future" in result.stderr
    assert "line 3 (o2): occurred_at: no program version was in force at 1980-01-01T00:00:00+00:00" in result.stderr
    assert count(shop.db, events) == 0


def test_a_members_file_keeps_the_time_zone_a_member_set_over_the_api(shop: Cli):
    shop.ok("import", "members", shop.file("members.csv", MEMBERS))
    with shop.db.read() as conn:
        ann = members.view(conn, 1, "ann", now=utcnow())
    members.upsert(
        shop.db,
        1,
        "ann",
        MemberProfile(**ann.model_dump(include=set(MemberProfile.model_fields)) | {"timezone": "Asia/Tokyo"}),
        now=utcnow(),
    )
    changed = MEMBERS.replace("ann@example.com", "ann@example.org")

    assert "2 rows: 1 accepted, 1 already imported" in shop.ok("import", "members", shop.file("m.csv", changed)).stdout
    assert "2 rows: 0 accepted, 2 already imported" in shop.ok("import", "members", shop.file("m.csv", changed)).stdout
    with shop.db.read() as conn:
        ann = members.view(conn, 1, "ann", now=utcnow())
    assert (ann.email, ann.timezone, ann.birthday.isoformat()) == ("ann@example.org", "Asia/Tokyo", "1990-04-01")


def test_a_terminal_sees_the_import_advance_to_its_last_row(shop: Cli, monkeypatch):
    terminal = io.StringIO()
    monkeypatch.setattr(common, "err", Console(file=terminal, force_terminal=True, width=120))
    shop.ok("import", "members", shop.file("members.csv", MEMBERS))
    shop.ok("import", "orders", shop.file("orders.csv", ORDERS))
    shown = terminal.getvalue()
    for step in ("Checking members", "Importing members", "Checking orders", "Importing orders", "2/2", "3/3"):
        assert step in shown, shown
