"""The receiver in docs/webhooks.md, run as written: it accepts a delivery Patron signed and refuses a forged one."""

import re
import warnings
from pathlib import Path

from starlette.exceptions import StarletteDeprecationWarning

from patron.services.clock import utcnow
from patron.webhooks import signing

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

GUIDE = Path(__file__).parents[2] / "docs" / "webhooks.md"


def test_the_documented_receiver_verifies_a_patron_delivery():
    (snippet,) = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.DOTALL)
    secret = signing.new_secret()
    namespace: dict = {}
    exec(compile(snippet.replace('"whsec_..."', repr(secret)), str(GUIDE), "exec"), namespace)
    body = '{"data":{"member_id":"m1","points":5},"timestamp":"2026-01-05T12:00:00+00:00","type":"points.earned"}'
    headers = signing.headers("msg_1", body, utcnow(), [secret]) | {"content-type": "application/json"}
    with TestClient(namespace["app"]) as client:
        assert client.post("/patron", content=body, headers=headers).status_code == 200
        forged = body.replace('"points":5', '"points":500')
        assert client.post("/patron", content=forged, headers=headers).status_code == 400
        other = signing.headers("msg_1", body, utcnow(), [signing.new_secret()])
        assert client.post("/patron", content=body, headers=other).status_code == 400
