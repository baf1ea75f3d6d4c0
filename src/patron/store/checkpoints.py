"""SQLite's write-ahead log moved into the database file by a thread of its own, so that no commit waits for it.

By default SQLite checkpoints inside the commit that takes the log past 1,000 pages: that commit copies the pages
into the database file and syncs it, and every request queued behind it waits as well. Under API load that was a
stall of all 16 clients every quarter of a second or so (p99 71-78 ms; 48-52 ms without). A database opened with
background checkpoints turns the automatic checkpoint off on its connections and runs a PASSIVE checkpoint here
every `interval` seconds instead, which blocks neither readers nor writers. The log then holds what is written in
about one interval, and a writer starts it afresh once a checkpoint has copied all of it.
"""

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

INTERVAL = 0.25  # seconds


class Checkpointer:
    """Checkpoints the SQLite database at `path` until `stop()`."""

    def __init__(self, path: str, *, interval: float = INTERVAL) -> None:
        self._path = path
        self._interval = interval
        self._stop = threading.Event()
        self.checkpoints = 0  # completed rounds (tests wait on it)
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoints", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(self._interval):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # the next round tries again; the log only grows meanwhile
                    log.warning("SQLite checkpoint of %s failed: %s", self._path, exc)
        finally:
            connection.close()
