"""Bearer API keys: who may call what. A refused call changes nothing."""

from datetime import timedelta

from patron.services import keys
from tests.api.conftest import assert_problem
from tests.api.events import signup
from tests.conftest import T0
from tests.helpers import program_document

DOCUMENT = program_document().model_dump(mode="json")

# Every authenticated route, with a request that succeeds when the key has the scope.
ROUTES = [
    ("read", "GET", "/v1/members/m1", None),
    ("read", "GET", "/v1/members", None),
    ("read", "GET", "/v1/members/m1/lots", None),
    ("read", "GET", "/v1/members/m1/history", None),
    ("read", "GET", "/v1/rewards", None),
    ("read", "GET", "/v1/program/versions", None),
    ("read", "GET", "/v1/program/versions/1", None),
    ("read", "POST", "/v1/program/validate", DOCUMENT),
    ("events", "PUT", "/v1/members/new-member", {"email": "new@example.com"}),
    ("events", "POST", "/v1/events", signup()),
    ("events", "POST", "/v1/events/batch", {"events": [signup()]}),
    ("redeem", "POST", "/v1/members/m1/redemptions", {"reward_id": "free-single"}),
    ("admin", "POST", "/v1/members/m1/adjustments", {"points": 5, "reason": "goodwill"}),
    ("admin", "POST", "/v1/program/versions", {"document": DOCUMENT}),
]
SCOPES = ("read", "events", "redeem", "admin")


def test_a_request_without_a_valid_key_is_401_and_changes_nothing(api):
    before = api.snapshot()
    for scope, method, path, body in ROUTES:
        token = api.tokens[scope]
        for headers in (
            {},
            {"Authorization": token},  # no scheme
            {"Authorization": f"Basic {token}"},
            {"Authorization": "Bearer "},
            {"Authorization": "Bearer ptn_nothere_secret"},
            {"Authorization": f"Bearer {token[:-2]}xx"},  # a real prefix with the wrong secret
            {"Authorization": "Bearer not-even-a-key"},
        ):
            reply = api.client.request(method, path, json=body, headers=headers)
            assert_problem(reply, 401, "Authorization")
            assert reply.headers["WWW-Authenticate"] == "Bearer", (method, path, headers)
    assert api.snapshot() == before


def test_a_key_without_the_scope_is_403_and_changes_nothing(api):
    api.fund("m1", 1000)  # so that a redemption would succeed if the scope check let it through
    before = api.snapshot()
    for scope, method, path, body in ROUTES:
        for other in SCOPES:
            if other in (scope, "admin"):
                continue
            reply = api.client.request(method, path, json=body, headers=api.auth(other))
            problem = assert_problem(reply, 403, "Authorization")
            assert f"'{scope}'" in problem["detail"], (method, path, other)
    assert api.snapshot() == before


def test_the_routes_scope_or_admin_lets_the_request_through(api):
    api.fund("m1", 600)  # two redemptions of 300
    for scope, method, path, body in ROUTES:
        for key in (scope, "admin"):
            reply = api.client.request(method, path, json=body, headers=api.auth(key))
            assert 200 <= reply.status_code < 300, (key, method, path, reply.text)


def test_a_revoked_key_is_refused(api):
    assert api.get("/v1/members/m1", key="read").status_code == 200
    prefix = api.tokens["read"].split("_")[1]
    with api.db.write() as conn:
        keys.revoke(conn, api.program_id, prefix, now=T0 + timedelta(hours=1))
    assert_problem(api.get("/v1/members/m1", key="read"), 401, "Authorization")


def test_health_needs_no_key(api):
    reply = api.client.get("/health")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok"}
