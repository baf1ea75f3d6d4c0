"""The fast path for simple conditions must agree with CEL on every input: same answer, or the same failure."""

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from patron.domain.expressions import Expression, ExpressionError
from patron.domain.program import EXPRESSION_VARIABLES

FIELDS = ("a", "b", "count")
PATHS = (
    *(f"event.{name}" for name in FIELDS),
    *(f"member.attributes.{name}" for name in FIELDS),
    "member.tier",
    "event.nested.a",
)
OPERATORS = ("==", "!=", "<", "<=", ">", ">=")

int_literals = st.one_of(st.integers(0, 20), st.integers(0, 10**18 - 1)).map(str)
string_literals = st.sampled_from(['"gold"', "'vinyl'", '""', '"é"', '"a b"'])
literals = st.one_of(int_literals, string_literals, st.sampled_from(["true", "false"]))


@st.composite
def comparison_tail(draw: st.DrawFn) -> str:
    """An operator and a literal, as the fast path takes them: strings and booleans only with == and !=."""
    literal = draw(literals)
    operators = OPERATORS if literal[0].isdigit() else OPERATORS[:2]
    return f"{draw(st.sampled_from(operators))} {literal}"


@st.composite
def comparisons(draw: st.DrawFn) -> str:
    path = draw(st.sampled_from(PATHS))
    value = f"size({path})" if draw(st.booleans()) and draw(st.booleans()) else path
    return f"{value} {draw(comparison_tail())}"


@st.composite
def exists(draw: st.DrawFn) -> str:
    return f"event.lines.exists(l, l.{draw(st.sampled_from(FIELDS))} {draw(comparison_tail())})"


conditions = st.recursive(
    st.one_of(comparisons(), exists()),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["&&", "||"]), inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        inner.map(lambda text: f"({text})"),
    ),
    max_leaves=4,
)

scalars = st.one_of(
    st.integers(-5, 25),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.booleans(),
    st.sampled_from(["gold", "vinyl", "", "é", "a b"]),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-30, max_value=30),
    st.none(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=3)),
    max_leaves=4,
)
# Mostly values the fast path answers on (small ints, the literals' strings, booleans), so it is really exercised.
likely = st.one_of(st.integers(-2, 22), st.sampled_from(["gold", "vinyl", "", "é"]), st.booleans(), values)
records = st.one_of(
    st.fixed_dictionaries(dict.fromkeys(FIELDS, likely)),
    st.dictionaries(st.sampled_from(FIELDS), values, max_size=3),
)


@st.composite
def contexts(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = draw(records)
    if draw(st.booleans()):
        event["lines"] = draw(st.lists(st.one_of(records, records, scalars), max_size=3))
    if draw(st.booleans()):
        event["nested"] = draw(st.one_of(records, scalars))
    member: dict[str, Any] = {}
    if draw(st.integers(0, 3)):
        member["attributes"] = draw(st.one_of(records, records, scalars))
    if draw(st.booleans()):
        member["tier"] = draw(st.one_of(st.sampled_from(["gold", ""]), scalars))
    return {"event": event, "member": member}


def outcome(judge: Any, context: dict[str, Any]) -> tuple[str, object]:
    try:
        return "answer", judge(context)
    except ExpressionError as exc:
        return "failure", str(exc)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(conditions, contexts())
@example("member.attributes.regular == true", {"event": {}, "member": {"attributes": {}}})
@example("event.a >= 3", {"event": {"a": 2**63}, "member": {}})
@example("event.a == 1", {"event": {"a": 1.0}, "member": {}})
@example("event.a == 1 && event.b == 1", {"event": {}, "member": {}})
def test_the_fast_path_answers_as_cel_does(source: str, context: dict[str, Any]) -> None:
    expression = Expression.compile(source, allowed_variables=EXPRESSION_VARIABLES)
    assert expression.fast is not None, f"{source!r} is in the subset the fast path understands"
    assert outcome(expression.is_true, context) == outcome(expression._cel_is_true, context)


def test_the_demo_conditions_take_the_fast_path() -> None:
    for source in (
        "event.local_weekday <= 5 && event.local_hour >= 14 && event.local_hour < 17",
        "event.total_minor >= 10000",
        "size(event.new_categories) > 0",
        "member.attributes.regular == true",
        'event.lines.exists(l, l.category == "frozen-yogurt")',
    ):
        assert Expression.compile(source, allowed_variables=EXPRESSION_VARIABLES).fast is not None


def test_anything_else_is_left_to_cel() -> None:
    for source in (
        "has(member.attributes.vip)",
        "!(event.total_minor > 5)",
        "event.total_minor > 1.5",
        "event.total_minor > -1",
        "event.total_minor > 0x10",
        'event.channel in ["web", "app"]',
        'event.store < "m"',
        'event.channel == r"web"',
        "event.total_minor / 100 > 3",
        "10 < event.total_minor",
        'event.lines.all(l, l.category == "vinyl")',
        'event["total_minor"] > 0',
        "event.lines.exists(event, event.quantity > 1)",
        "member.attributes.vip",
    ):
        assert Expression.compile(source, allowed_variables=EXPRESSION_VARIABLES).fast is None, source
