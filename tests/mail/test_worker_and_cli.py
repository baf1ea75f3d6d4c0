"""Mail as a merchant runs it: `patron worker` queues and sends it with no command run by hand, and
`patron mail send-pending` does the sending once for setups without a worker."""

import pytest
from typer.testing import CliRunner

from patron.cli import app
from patron.mail import outbox
from patron.mail.kinds import MailKind, RewardRedeemed
from patron.services import adjustments, redemptions
from patron.store.database import Database
from patron.worker.plugins import default_registry
from patron.worker.runner import Worker
from patron.worker.settings import WorkerSettings
from tests.conftest import T0
from tests.helpers import set_up
from tests.mail.conftest import SECRET, body, enrol


@pytest.fixture
def mail_env(monkeypatch, inbox):
    monkeypatch.setenv("PATRON_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("PATRON_SMTP_PORT", str(inbox.port))
    monkeypatch.setenv("PATRON_SMTP_SECURITY", "none")
    monkeypatch.setenv("PATRON_SECRET_KEY", SECRET)
    monkeypatch.setenv("PATRON_MAIL_FROM", "Records <shop@records.example>")


def test_the_worker_sends_a_redemption_receipt_on_its_own(db, inbox, mail_env):
    s = set_up(db, now=T0, member_ids=())
    enrol(db, s.program_id, "ola", email="ola@example.com", locale="pl")
    adjustments.adjust(db, s.cache, s.program_id, "ola", 300, "gift", actor="test", now=T0)
    redemptions.redeem(db, s.cache, s.program_id, "ola", "free-single", now=T0)
    registry = default_registry(WorkerSettings(), worker="w")
    assert "mail.points_summary" in registry.kinds
    worker = Worker(db, registry, WorkerSettings(), clock=lambda: T0, name="w")

    for _ in range(5):
        worker.turn()

    [receipt] = inbox.received
    assert receipt["From"] == "Records <shop@records.example>"
    assert "Nagroda A free CD single została wymieniona za 300 punktów." in body(receipt)


def test_send_pending_from_the_command_line(tmp_path, monkeypatch, inbox, mail_env):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PATRON_DATABASE_URL", url)
    runner = CliRunner()
    assert runner.invoke(app, ["init", "--program", "shop"]).exit_code == 0
    db = Database(url)
    try:
        with db.read() as conn:
            program_id = conn.exec_driver_sql("SELECT id FROM programs").scalar_one()
        member_id = enrol(db, program_id, "li", email="li@example.com", locale="zh-CN")
        receipt = RewardRedeemed(reward_name="礼品", cost=1000, balance=5)
        db.run(
            lambda conn: outbox.queue(
                conn, program_id=program_id, member_id=member_id, kind=MailKind.REWARD_REDEEMED, context=receipt, now=T0
            )
        )
    finally:
        db.dispose()

    sent = runner.invoke(app, ["mail", "send-pending"])
    status = runner.invoke(app, ["mail", "status"])

    assert sent.exit_code == 0, sent.output
    assert "1 sent, 0 to retry later, 0 failed" in sent.stdout
    assert "sent: 1" in status.stdout
    [message] = inbox.received
    assert "您已使用 1,000 积分 兑换了礼品。" in body(message)


def test_send_pending_says_when_no_smtp_server_is_configured(tmp_path, monkeypatch):
    monkeypatch.setenv("PATRON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("PATRON_SMTP_HOST", raising=False)
    reply = CliRunner().invoke(app, ["mail", "send-pending"])
    assert reply.exit_code == 1
    assert "PATRON_SMTP_HOST: not set: nothing sent (0 messages queued)" in reply.stderr


def test_preview_shows_a_message_in_a_members_language():
    reply = CliRunner().invoke(app, ["mail", "preview", "reward_redeemed", "--locale", "pl-PL"])
    assert reply.exit_code == 0, reply.output
    assert "Subject: Twoja nagroda: Coffee" in reply.stdout
    assert "Nagroda Coffee została wymieniona za 5 punktów." in reply.stdout
