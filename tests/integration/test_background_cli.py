"""`patron jobs` and `patron webhooks` on a SQLite file: what a merchant types, and what they read back."""

import pytest
from typer.testing import CliRunner

from patron.cli import app, common


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("PATRON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("PATRON_PROGRAM", "shop")
    monkeypatch.setattr(common.out, "width", 250)  # tables unwrapped, so the test reads whole values
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    return runner


def test_jobs_list_run_and_history(cli):
    listed = cli.invoke(app, ["jobs", "list"])
    assert listed.exit_code == 0, listed.output
    for name in ("points.activate", "points.expire", "points.remind_expiring"):
        assert name in listed.stdout

    ran = cli.invoke(app, ["jobs", "run", "points.expire"])
    assert ran.exit_code == 0, ran.output
    assert ran.stdout.strip() == 'points.expire: succeeded {"lots": 0, "members": 0, "points": 0}'

    history = cli.invoke(app, ["jobs", "history", "points.expire"])
    assert history.exit_code == 0, history.output
    assert "succeeded" in history.stdout
    assert "points.expire" in history.stdout

    unknown = cli.invoke(app, ["jobs", "run", "points.steal"])
    assert unknown.exit_code == 2
    assert "no job 'points.steal'" in unknown.stderr


def test_webhooks_create_rotate_list_and_replay(cli):
    made = cli.invoke(app, ["webhooks", "create", "https://example.com/h", "-e", "points.earned"])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert secret.startswith("whsec_")
    assert "shown only now" in made.stderr

    rotated = cli.invoke(app, ["webhooks", "rotate", "1"])
    assert rotated.exit_code == 0, rotated.output
    assert rotated.stdout.strip().startswith("whsec_")
    assert rotated.stdout.strip() != secret

    listed = cli.invoke(app, ["webhooks", "list"])
    assert listed.exit_code == 0
    assert "https://example.com/h" in listed.stdout
    assert secret not in listed.stdout
    assert rotated.stdout.strip() not in listed.stdout

    refused = cli.invoke(app, ["webhooks", "create", "https://example.com/h", "-e", "points.stolen"])
    assert refused.exit_code == 1
    assert "event_types" in refused.stderr

    missing = cli.invoke(app, ["webhooks", "replay", "99"])
    assert missing.exit_code == 1
    assert "no webhook delivery 99" in missing.stderr
    assert cli.invoke(app, ["webhooks", "replay", "--dead-of", "1"]).stdout.strip() == (
        "0 dead deliveries of webhook 1 queued again."
    )
    assert cli.invoke(app, ["webhooks", "disable", "1"]).exit_code == 0
    assert cli.invoke(app, ["webhooks", "deliveries"]).exit_code == 0
