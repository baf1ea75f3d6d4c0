"""The OpenAPI document describes the API as it behaves: every route, and errors as problem+json."""

import importlib
import pkgutil

from fastapi.routing import APIRoute

from patron.api import routes as route_modules
from patron.api.problems import Problem
from tests.api.conftest import assert_problem

# The routes of issue 2; other features add their own beside them.
CORE_ROUTES = {
    ("get", "/health"),
    ("get", "/v1/members"),
    ("put", "/v1/members/{member_id}"),
    ("get", "/v1/members/{member_id}"),
    ("get", "/v1/members/{member_id}/lots"),
    ("get", "/v1/members/{member_id}/history"),
    ("post", "/v1/events"),
    ("post", "/v1/events/batch"),
    ("get", "/v1/rewards"),
    ("post", "/v1/members/{member_id}/redemptions"),
    ("post", "/v1/members/{member_id}/adjustments"),
    ("get", "/v1/program/versions"),
    ("post", "/v1/program/versions"),
    ("get", "/v1/program/versions/{version}"),
    ("post", "/v1/program/validate"),
}


def operations(schema):
    return {
        (method, path): operation for path, methods in schema["paths"].items() for method, operation in methods.items()
    }


def routes_defined():
    """Every route of every module in patron.api.routes, whether or not the app mounted it."""
    found = set()
    for module_info in pkgutil.iter_modules(route_modules.__path__):
        router = importlib.import_module(f"{route_modules.__name__}.{module_info.name}").router
        found |= {
            (method.lower(), route.path)
            for route in router.routes
            if isinstance(route, APIRoute) and route.include_in_schema
            for method in route.methods
        }
    return found


def test_the_document_lists_every_route(api):
    reply = api.client.get("/openapi.json")  # no key needed to read the contract
    assert reply.status_code == 200, reply.text
    documented = set(operations(reply.json()))
    assert documented >= CORE_ROUTES
    assert documented == routes_defined()
    # And each documented route is served: routing knows it (a 404 from routing has no field errors).
    for method, path in documented:
        concrete = path.replace("{member_id}", "m1").replace("{version}", "1")
        reply = api.client.request(method, concrete, headers=api.auth())
        assert reply.status_code not in (404, 405) or reply.json()["errors"], (method, path, reply.text)


def test_every_error_is_documented_as_problem_json(api):
    schema = api.client.get("/openapi.json").json()
    assert "Problem" in schema["components"]["schemas"]
    assert not {"HTTPValidationError", "ValidationError"} & set(schema["components"]["schemas"])
    for (method, path), operation in operations(schema).items():
        errors = {code: response for code, response in operation["responses"].items() if code[0] in "45"}
        keyless = api.client.request(method, path.replace("{member_id}", "m1").replace("{version}", "1"))
        if keyless.status_code == 401:
            # A route that needs a key says so: a missing one is 401, one without the scope 403.
            assert {"401", "403"} <= set(errors), (method, path)
        for code, response in errors.items():
            assert response["content"] == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }, (
                method,
                path,
                code,
            )


def test_the_documented_statuses_cover_the_routes_errors(api):
    ops = operations(api.client.get("/openapi.json").json())

    def statuses(method, path):
        return {code for code in ops[(method, path)]["responses"] if code[0] in "45"}

    assert {"404", "409", "422"} <= statuses("post", "/v1/members/{member_id}/redemptions")
    assert {"404", "409", "422"} <= statuses("post", "/v1/members/{member_id}/adjustments")
    assert {"404", "409", "422"} <= statuses("post", "/v1/events")
    assert {"422"} <= statuses("post", "/v1/program/versions")
    assert {"404", "422"} <= statuses("get", "/v1/program/versions/{version}")
    # Retries are safe where they are documented to be: both take an Idempotency-Key header.
    for path in ("/v1/members/{member_id}/redemptions", "/v1/members/{member_id}/adjustments"):
        headers = [p["name"] for p in ops[("post", path)]["parameters"] if p["in"] == "header"]
        assert "Idempotency-Key" in headers, path


def test_errors_the_api_gives_match_the_problem_schema(api):
    replies = [
        api.client.get("/v1/members/m1"),  # 401
        api.get("/v1/members/m1", key="events"),  # 403
        api.get("/v1/members/nobody"),  # 404
        api.post("/v1/members/m1/adjustments", json={"points": -5, "reason": "x"}),  # 409
        api.post("/v1/members/m1/adjustments", json={"points": 0.5}),  # 422
        api.client.get("/v1/no-such-route"),  # 404 from routing, not from a route
        api.client.delete("/v1/members/m1", headers=api.auth()),  # 405
    ]
    assert [r.status_code for r in replies] == [401, 403, 404, 409, 422, 404, 405]
    for reply in replies:
        assert reply.headers["content-type"] == "application/problem+json", reply.text
        problem = Problem.model_validate(reply.json())
        assert (problem.status, bool(problem.title), bool(problem.detail)) == (reply.status_code, True, True)


def test_the_interactive_docs_are_served(api):
    docs = api.client.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text


def test_health_answers_without_a_key_or_with_a_bad_one(api):
    for headers in ({}, {"Authorization": "Bearer not-a-key"}):
        reply = api.client.get("/health", headers=headers)
        assert (reply.status_code, reply.json()) == (200, {"status": "ok"})
    assert_problem(api.client.post("/health"), 405)
