"""`patron coupons` on a SQLite file: codes on stdout, one a line; the batch readable back."""

import pytest
from typer.testing import CliRunner

from patron.cli import app


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("PATRON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("PATRON_PROGRAM", "shop")
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    return runner


def test_create_list_show(cli):
    made = cli.invoke(
        app,
        [
            "coupons",
            "create-batch",
            "spring",
            "--kind",
            "spend_and_save",
            "--amount",
            "20",
            "--min-spend",
            "200",
            "--count",
            "5",
            "--pattern",
            "SPRING-####-####",
        ],
    )
    assert made.exit_code == 0, made.output
    codes = made.stdout.split()
    assert len(set(codes)) == 5
    assert all(code.startswith("SPRING-") for code in codes)
    listed = cli.invoke(app, ["coupons", "list"])
    assert listed.exit_code == 0
    assert "spring" in listed.stdout
    shown = cli.invoke(app, ["coupons", "show", "spring"])
    assert shown.exit_code == 0
    assert "spend 200, get 20 off" in shown.stdout
    assert all(code in shown.stdout for code in codes)


def test_bad_offer_is_refused_with_the_field(cli):
    made = cli.invoke(app, ["coupons", "create-batch", "x", "--kind", "amount_off", "--count", "2"])
    assert made.exit_code == 1
    assert "needs 'amount'" in made.stderr
    assert cli.invoke(app, ["coupons", "show", "x"]).exit_code == 1
