"""`patron serve` as a user starts it: a process serving the API (and its docs) on the configured port."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.servers import free_port, wait_for

PATRON = Path(sys.executable).parent / "patron"


def test_serve_answers_on_the_configured_port(tmp_path):
    port = free_port()
    env = {**os.environ, "PATRON_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}", "PATRON_PORT": str(port)}
    with subprocess.Popen(
        [str(PATRON), "serve"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as server:
        try:
            assert json.loads(wait_for(f"http://127.0.0.1:{port}/health", seconds=60, process=server)) == {
                "status": "ok"
            }
            assert b"swagger" in wait_for(f"http://127.0.0.1:{port}/docs", seconds=5, process=server).lower()
        finally:
            server.terminate()
            output, _ = server.communicate(timeout=30)
    assert f"Serving the Patron API on http://127.0.0.1:{port} (docs: http://127.0.0.1:{port}/docs)" in output
    assert (tmp_path / "serve.db").exists()  # migrated before serving
