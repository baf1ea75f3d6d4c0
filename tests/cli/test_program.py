"""`patron init` and `patron program validate|publish|show`."""

import yaml

from patron.services import programs
from patron.store.tables import program_versions
from patron.store.tables import programs as program_table
from tests.cli.conftest import Cli, count, snapshot
from tests.helpers import DEMO_PROGRAM

BAD_DOCUMENT = """\
name: Broken
currency: USD
earning: {points_per_unit: "1"}
rules:
  - id: purchase
    event: purchase
    when: "event.total_minor >"
"""


def test_init_creates_a_program_once(cli: Cli):
    created = cli.ok("init", "--program", "shop")
    assert "Created program 'shop'" in created.stdout
    assert count(cli.db, program_table) == 1

    again = cli("init", "--program", "shop")
    assert again.exit_code == 1
    assert "error: slug: program 'shop' exists" in again.stderr
    assert count(cli.db, program_table) == 1


def test_validate_says_valid_without_a_database(tmp_path, monkeypatch):
    # An unreachable database proves validate never opens one: a document can be checked anywhere.
    monkeypatch.setenv("PATRON_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    cli = Cli(db=None, folder=tmp_path)  # type: ignore[arg-type]
    result = cli.ok("program", "validate", str(DEMO_PROGRAM))
    document = programs.read_document(DEMO_PROGRAM)
    assert f"valid ({document.name!r}: {len(document.rules)} rules, {len(document.rewards)} rewards, " in result.stdout
    assert "coupon batches spend-200-save-20, raffles listening-party)" in result.stdout


def test_validate_names_the_path_of_each_bad_field(tmp_path):
    cli = Cli(db=None, folder=tmp_path)  # type: ignore[arg-type]
    path = cli.file("broken.yaml", BAD_DOCUMENT.replace("USD", "dollars"))
    result = cli("program", "validate", path)
    assert result.exit_code == 1
    assert "error: currency:" in result.stderr
    assert "error: rules.0.when:" in result.stderr
    assert "valid" not in result.stdout


def test_validate_a_missing_file_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a short path: click's error box wraps long ones
    result = Cli(db=None, folder=tmp_path)("program", "validate", "nope.yaml")  # type: ignore[arg-type]
    assert result.exit_code == 2
    assert "nope.yaml" in result.stderr


def test_publish_then_show_round_trips(cli: Cli):
    cli.ok("init")
    published = cli.ok("program", "publish", str(DEMO_PROGRAM), "--effective-from", "2026-01-01T00:00:00+01:00")
    assert "Published version 1 of program 'default', in force from 2026-01-01T00:00:00+01:00" in published.stdout

    shown = cli.ok("program", "show")
    assert shown.stdout.startswith("# program 'default', version 1 of 1")
    document = yaml.safe_load(shown.stdout)
    published_document = programs.read_document(DEMO_PROGRAM)
    assert document["name"] == published_document.name
    assert [rule["id"] for rule in document["rules"]] == [rule.id for rule in published_document.rules]

    # What `show` prints, `publish` takes back: a second version.
    again = cli.ok("program", "publish", cli.file("shown.yaml", shown.stdout))
    assert "Published version 2" in again.stdout
    assert count(cli.db, program_versions) == 2
    assert "version 1 of 2" in cli.ok("program", "show", "--version", "1").stdout


def test_publish_refuses_a_bad_document_and_writes_nothing(cli: Cli):
    cli.ok("init")
    before = snapshot(cli.db)
    result = cli("program", "publish", cli.file("broken.yaml", BAD_DOCUMENT))
    assert result.exit_code == 1
    assert "error: rules.0.when:" in result.stderr
    assert snapshot(cli.db) == before


def test_publish_refuses_a_time_without_a_zone(cli: Cli):
    cli.ok("init")
    result = cli("program", "publish", str(DEMO_PROGRAM), "--effective-from", "2026-01-01")
    assert result.exit_code == 2
    assert "error: --effective-from: '2026-01-01' has no time zone" in result.stderr
    assert count(cli.db, program_versions) == 0


def test_commands_name_a_program_that_does_not_exist(cli: Cli):
    result = cli("program", "publish", str(DEMO_PROGRAM), "--program", "nope")
    assert result.exit_code == 1
    assert "error: program: no program 'nope': create it with `patron init --program nope`" in result.stderr
    assert count(cli.db, program_table) == 0


def test_show_names_a_version_that_does_not_exist(cli: Cli):
    cli.ok("init")
    assert "has no published version yet" in cli("program", "show").stderr
    cli.ok("program", "publish", str(DEMO_PROGRAM))
    missing = cli("program", "show", "--version", "7")
    assert missing.exit_code == 1
    assert "error: version: program 'default' has versions 1 to 1, not 7" in missing.stderr


BAD_SECTIONS = """\
name: Offers
currency: USD
rewards:
  - {id: single, name: A single, cost: 300, kind: free_product, sku: CD-SINGLE}
coupon_batches:
  - id: spring
    offer: {kind: amount_off, amount: "5.00"}
    count: 10
    pattern: SPRING-####
raffles:
  - {id: party, prize_reward_id: album, winners: 1, entry_cost: 100, max_entries_per_member: 3,
     draws_at: "2030-01-01T20:00:00Z"}
"""


def test_validate_names_the_path_of_a_bad_coupon_batch_or_raffle(tmp_path):
    cli = Cli(db=None, folder=tmp_path)  # type: ignore[arg-type]
    result = cli("program", "validate", cli.file("offers.yaml", BAD_SECTIONS))
    assert result.exit_code == 1
    assert "error: coupon_batches.0.pattern: a pattern needs at least 8 '#'" in result.stderr
    assert "valid" not in result.stdout
    fixed_pattern = BAD_SECTIONS.replace("SPRING-####\n", "SPRING-####-####\n")
    result = cli("program", "validate", cli.file("offers.yaml", fixed_pattern))
    assert result.exit_code == 1
    assert "error: raffles.0.prize_reward_id: no reward 'album' in rewards" in result.stderr
    fixed = fixed_pattern.replace("prize_reward_id: album", "prize_reward_id: single")
    assert (
        "coupon batches spring, raffles party)" in cli.ok("program", "validate", cli.file("offers.yaml", fixed)).stdout
    )


def test_publish_makes_the_declared_offers_once_and_refuses_a_change_of_terms(cli: Cli):
    cli.ok("init")
    published = cli.ok("program", "publish", str(DEMO_PROGRAM)).stdout
    assert "Made coupon batch 'spend-200-save-20': 100 codes, spend 200.00, get 20.00 off." in published
    assert "Made raffle 'listening-party': open from " in published  # now: the version is in force at once
    assert ", drawn at 2030-06-28T20:00:00-04:00, seed SHA-256 " in published
    listed = cli.ok("coupons", "show", "spend-200-save-20").stdout
    assert listed.count("SAVE20-") == 100
    assert "secret until the draw" in cli.ok("raffle", "show", "listening-party").stdout

    # What `show` prints, `publish` takes back, and it makes nothing new.
    shown = cli.file("shown.yaml", cli.ok("program", "show").stdout)
    before = snapshot(cli.db)
    again = cli.ok("program", "publish", shown).stdout
    assert "Published version 2" in again
    assert "Made" not in again
    assert cli.ok("coupons", "show", "spend-200-save-20").stdout == listed

    dearer = yaml.safe_load(DEMO_PROGRAM.read_text())
    dearer["raffles"][0]["entry_cost"] = 150
    refused = cli("program", "publish", cli.file("dearer.yaml", yaml.safe_dump(dearer)))
    assert refused.exit_code == 1
    assert "error: raffles.0.entry_cost: raffle 'listening-party' was opened with entry_cost 100, not 150" in (
        refused.stderr
    )
    after = snapshot(cli.db)
    assert len(after.pop("program_versions")) == len(before.pop("program_versions")) + 1
    assert len(after.pop("outbox")) == len(before.pop("outbox")) + 1
    assert after == before
