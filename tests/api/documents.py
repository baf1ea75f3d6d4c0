"""Program documents as JSON, the way a merchant sends them to POST /v1/program/versions."""

from typing import Any

from tests.helpers import program_document


def demo_document(**overrides: Any) -> dict[str, Any]:
    """The demo program as JSON, with top-level fields replaced."""
    return program_document().model_dump(mode="json") | overrides


def with_reward(reward_id: str, **changes: Any) -> dict[str, Any]:
    """The demo document with one reward's fields changed."""
    document = demo_document()
    for reward in document["rewards"]:
        if reward["id"] == reward_id:
            reward.update(changes)
    return document


def gift(reward_id: str = "mug", *, stock: int, cost: int = 100, **fields: Any) -> dict[str, Any]:
    return {"id": reward_id, "name": f"A {reward_id}", "cost": cost, "kind": "gift", "stock": stock, **fields}
