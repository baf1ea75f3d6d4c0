"""Frozen value classes that are quicker to build: the engine builds a dozen of them for every decision."""

from dataclasses import MISSING, fields, is_dataclass
from types import MemberDescriptorType
from typing import Any, TypeVar

T = TypeVar("T")


def quick_init(cls: type[T]) -> type[T]:
    """Gives a frozen slots dataclass an __init__ that stores each field through its slot.

    The generated __init__ of a frozen dataclass stores each field with object.__setattr__, which looks the slot up
    again on every call and costs about twice as much. The parameters, their order, defaults and factories are
    the dataclass's own; nothing else of the class changes (repr, equality, hashing, immutability).
    """
    if not is_dataclass(cls) or not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__}: quick_init is for frozen dataclasses")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: quick_init does not run __post_init__")
    namespace: dict[str, Any] = {"_MISSING": MISSING}
    parameters: list[str] = []
    body: list[str] = []
    annotations: dict[str, Any] = {}
    for f in fields(cls):
        slot = cls.__dict__.get(f.name)
        if not f.init or f.kw_only or not isinstance(slot, MemberDescriptorType):
            raise TypeError(f"{cls.__name__}.{f.name}: quick_init needs slots and positional init fields")
        name = f.name
        namespace[f"_set_{name}"] = slot.__set__
        annotations[name] = f.type
        if f.default is not MISSING:
            namespace[f"_default_{name}"] = f.default
            parameters.append(f"{name}=_default_{name}")
            body.append(f"_set_{name}(self, {name})")
        elif f.default_factory is not MISSING:
            namespace[f"_factory_{name}"] = f.default_factory
            parameters.append(f"{name}=_MISSING")
            body.append(f"_set_{name}(self, _factory_{name}() if {name} is _MISSING else {name})")
        else:
            parameters.append(name)
            body.append(f"_set_{name}(self, {name})")
    # Built from the class's own field names, as dataclasses builds its __init__; never from input.
    source = f"def __init__(self, {', '.join(parameters)}):\n" + "".join(f"    {line}\n" for line in body or ["pass"])
    exec(source, namespace)  # noqa: S102
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = {**annotations, "return": None}
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
