"""The README's two commands work from a clean copy of the repository, and its tour's curl lines do what it says.

The copy holds the files `git ls-files -co --exclude-standard` lists (committed or not, never ignored ones such as
.venv), so the test sees the work tree as a newcomer's clone would be, with its own fresh virtualenv. The
commands and curl lines are read out of README.md, so the README cannot drift from what is tested.

`make demo` runs as written, with a free port and a database in the copy (PATRON_PORT, PATRON_DATABASE_URL), and
loads the whole CDNOW history. `make test` runs as written too (install, ruff, mypy, import-linter, then pytest),
but with PYTEST_ADDOPTS narrowing pytest to a few files on both backends: the outer run is already running the
whole suite, and running it again inside itself would double CI time and recurse into this file.
"""

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port, wait_for

REPOSITORY = Path(__file__).parents[2]
README = REPOSITORY / "README.md"
NESTED = "PATRON_E2E_NESTED"  # set in the copy's own test run: these tests do not run inside themselves
NESTED_SELECTION = "tests/unit/test_expressions.py tests/cli/test_keys.py"
DEMO_URL = "http://127.0.0.1:8000"
TOUR_MEMBER = "cdnow-00095"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.environ.get(NESTED) == "1", reason="inside the README test's own `make test`"),
]


def code_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)


def commands(block: str) -> list[str]:
    """Shell commands of a code block: comments and blank lines dropped, continued lines joined."""
    joined = re.sub(r"\\\n\s*", "", block)
    lines = (
        line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else "" for line in joined.splitlines()
    )
    return [line for line in lines if line]


def setup_commands() -> list[str]:
    return commands(code_blocks(README.read_text(encoding="utf-8"))[0])


def tour_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    tour = text[text.index("## A short tour") :]
    return commands(code_blocks(tour)[0])


def test_the_readme_starts_with_exactly_the_two_commands():
    assert setup_commands() == ["make demo", "make test"]


@pytest.fixture(scope="module")
def clean_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPOSITORY,
        check=True,
        capture_output=True,
    ).stdout.decode()
    copy = tmp_path_factory.mktemp("clone")
    for name in filter(None, listed.split("\0")):
        source = REPOSITORY / name
        if source.is_file():  # a file deleted but not yet committed is listed and absent
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode)
    return copy


def clean_environment(**extra: str) -> dict[str, str]:
    """This shell's environment without what the outer test run or a virtualenv put in it."""
    outer_venv = str(REPOSITORY / ".venv")
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTEST_", "PATRON_", "VIRTUAL_ENV", "PYTHON")) or name == "PATRON_TEST_POSTGRES_URL"
    }
    kept["PATH"] = os.pathsep.join(p for p in kept.get("PATH", "").split(os.pathsep) if not p.startswith(outer_venv))
    return {**kept, **extra}


@pytest.fixture(scope="module")
def demo(clean_copy: Path) -> Iterator[tuple[str, str]]:
    """`make demo` running in the background: (its base URL, the admin key it printed)."""
    port = free_port()
    log = clean_copy / "make-demo.log"
    env = clean_environment(PATRON_DATABASE_URL=f"sqlite:///{clean_copy / 'e2e-demo.db'}", PATRON_PORT=str(port))
    with log.open("w") as output:
        server = subprocess.Popen(
            setup_commands()[0].split(),
            cwd=clean_copy,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make, patron and uvicorn in one process group, stopped together
        )
    try:
        try:
            # Time for a fresh virtualenv and the whole CDNOW import on a busy 2-core machine.
            wait_for(f"http://127.0.0.1:{port}/health", seconds=900, process=server)
        except (AssertionError, OSError) as exc:
            pytest.fail(f"`make demo` did not serve: {exc}\n{log.read_text()[-5000:]}")
        printed = log.read_text()
        keys = re.findall(r"^export PATRON_KEY=(ptn_\S+)$", printed, flags=re.MULTILINE)
        assert len(keys) == 1, printed[-5000:]
        yield f"http://127.0.0.1:{port}", keys[0]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def run_tour_line(line: str, base_url: str, key: str) -> Any:
    """One curl line of the tour, run by bash as a reader would paste it; its reply parsed as JSON."""
    assert line.startswith("curl "), f"the tour should be curl lines: {line}"
    assert DEMO_URL in line, line
    done = subprocess.run(
        ["bash", "-c", line.replace(DEMO_URL, base_url)],
        env=clean_environment(PATRON_KEY=key),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{line}\n{done.stderr}"
    return json.loads(done.stdout)


def test_make_demo_serves_and_the_tour_works(demo: tuple[str, str]):
    base_url, key = demo
    lines = tour_commands()
    assert lines[0] == "export PATRON_KEY=ptn_..."  # the reader pastes the key `make demo` printed
    docs = wait_for(f"{base_url}/docs", seconds=10, process=None)
    assert b"swagger" in docs.lower()

    seen: dict[str, Any] = {}
    available_before = None
    for line in lines[1:]:
        reply = run_tour_line(line, base_url, key)
        path = re.search(r"127\.0\.0\.1:\d+(/v1/[^\s'?\"]*)", line.replace(DEMO_URL, base_url))
        assert path is not None, line
        seen[path.group(1)] = reply
        if path.group(1) == f"/v1/members/{TOUR_MEMBER}":
            available_before = reply["balance"]["available"]

    earned = seen["/v1/events"]
    assert earned["member_id"] == TOUR_MEMBER
    # 1 point a dollar and 50 for a basket over $100, at least: the demo program's other bonuses (quiet hours,
    # tiers, campaigns) depend on the hour and on the member's history.
    assert earned["points"] >= 170, earned
    assert earned["pending_points"] == earned["points"], "purchase points wait for the return window"
    assert {"purchase", "big-basket"} <= {r["rule_id"] for r in earned["rules"] if r["fired"]}

    member = seen[f"/v1/members/{TOUR_MEMBER}"]
    assert member["balance"]["pending"] >= earned["points"], member
    assert available_before is not None
    assert available_before >= 500, "the tour's member must have the coupon's 500 points to spend"

    history = seen[f"/v1/members/{TOUR_MEMBER}/history"]
    assert history["entries"][0]["kind"] == "purchase", history

    assert "coupon-5" in {reward["id"] for reward in seen["/v1/rewards"]["rewards"]}

    redeemed = seen[f"/v1/members/{TOUR_MEMBER}/redemptions"]
    assert redeemed["reward_id"] == "coupon-5", redeemed
    assert redeemed["coupon_code"]
    assert redeemed["balance"]["available"] == available_before - 500


def test_make_test_runs_in_the_copy(clean_copy: Path):
    command = setup_commands()[1]
    env = clean_environment(**{NESTED: "1", "PYTEST_ADDOPTS": NESTED_SELECTION})
    done = subprocess.run(
        command.split(), cwd=clean_copy, env=env, capture_output=True, text=True, timeout=1200, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-8000:]
    assert "0 broken." in output  # the import contracts were checked
    assert re.search(r"\d+ passed", output), output[-3000:]
    assert " failed" not in output
