"""SQLite's write-ahead log checkpointed by a thread (store.checkpoints), as the API server opens its database: the
commits leave the log alone, and what they wrote still reaches the database file."""

import shutil
import sqlite3
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from patron.store.database import Database

ROWS = 200  # a few pages of log: far below the 1,000 pages at which a commit would checkpoint it itself


def _write_rows(db: Database) -> None:
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    for n in range(ROWS):
        with db.write() as conn:
            conn.execute(sa.text("INSERT INTO notes (body) VALUES (:body)"), {"body": f"note {n}"})


def _rows_in_the_database_file_alone(path: Path, tmp_path: Path) -> int:
    """The rows a copy of the database file holds without its log: what has been checkpointed."""
    copy = tmp_path / "copy.db"
    shutil.copyfile(path, copy)
    with sqlite3.connect(copy) as conn:
        exists = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'notes'").fetchone()[0]
        return int(conn.execute("SELECT count(*) FROM notes").fetchone()[0]) if exists else 0


def _checkpointer_threads() -> int:
    return sum(t.name == "sqlite-checkpoints" for t in threading.enumerate())


def test_with_background_checkpoints_commits_leave_the_log_to_a_thread_that_moves_it_into_the_file(tmp_path):
    path = tmp_path / "patron.db"
    db = Database(f"sqlite:///{path}", background_checkpoints=True)
    try:
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 0
        _write_rows(db)
        assert db.checkpointer is not None
        done = db.checkpointer.checkpoints
        deadline = time.monotonic() + 10
        while db.checkpointer.checkpoints < done + 2:  # a whole round after the last commit
            assert time.monotonic() < deadline, "the checkpointer did not run"
            time.sleep(0.05)
        assert _rows_in_the_database_file_alone(path, tmp_path) == ROWS
    finally:
        db.dispose()
    assert _checkpointer_threads() == 0


def test_without_them_the_commits_checkpoint_as_sqlite_does_by_default(tmp_path):
    path = tmp_path / "patron.db"
    db = Database(f"sqlite:///{path}")
    try:
        assert db.checkpointer is None
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 1000
        _write_rows(db)
        time.sleep(0.6)
        # Too little log for an automatic checkpoint, and nothing else checkpoints: the rows are in the log only.
        assert _rows_in_the_database_file_alone(path, tmp_path) == 0
    finally:
        db.dispose()
