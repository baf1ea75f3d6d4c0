"""quick_init builds the same values as the dataclass's own __init__: same parameters, defaults and factories."""

from dataclasses import FrozenInstanceError, dataclass, field, replace

import pytest

from patron.domain.engine import Decision, MemberState
from patron.domain.ledger import Account, Posting
from patron.domain.values import quick_init


@dataclass(frozen=True, slots=True)
class Plain:
    a: int
    b: str = "b"
    c: dict[str, int] = field(default_factory=dict)


@quick_init
@dataclass(frozen=True, slots=True)
class Quick:
    a: int
    b: str = "b"
    c: dict[str, int] = field(default_factory=dict)


def fields_of(value: Plain | Quick) -> tuple[object, ...]:
    return (value.a, value.b, value.c)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((1,), {}), ((1, "x"), {}), ((1, "x", {"k": 2}), {}), ((), {"a": 1, "c": {"k": 3}}), ((1,), {"b": "y"})],
)
def test_the_same_values_from_the_same_arguments(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    assert fields_of(Quick(*args, **kwargs)) == fields_of(Plain(*args, **kwargs))  # type: ignore[arg-type]


def test_a_factory_gives_each_value_its_own_default() -> None:
    first, second = Quick(1), Quick(2)
    assert first.c == {}
    assert first.c is not second.c


def test_wrong_arguments_are_refused_as_the_dataclass_refuses_them() -> None:
    with pytest.raises(TypeError):
        Quick()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Quick(1, "x", {}, 4)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Quick(1, d=2)  # type: ignore[call-arg]


def test_the_value_stays_frozen_and_compares_by_value() -> None:
    value = Quick(1, "x")
    with pytest.raises(FrozenInstanceError):
        value.a = 2  # type: ignore[misc]
    assert value == Quick(1, "x")
    assert value != Quick(1, "y")
    assert replace(value, a=5) == Quick(5, "x")
    assert repr(value) == "Quick(a=1, b='x', c={})"


def test_the_engine_values_keep_their_defaults() -> None:
    assert hash(Posting(Account.ISSUED, 5)) == hash(Posting(Account.ISSUED, 5))
    decision = Decision("purchase", 1, 0)
    assert decision.outcomes == ()
    assert decision.order is None
    assert decision.signals == ()
    assert MemberState("m").attributes == {}
    assert MemberState("m").usage is not MemberState("m").usage


def test_only_frozen_slots_dataclasses() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(slots=True)
    class NotFrozen:
        a: int

    with pytest.raises(TypeError):
        quick_init(NoSlots)
    with pytest.raises(TypeError):
        quick_init(NotFrozen)
