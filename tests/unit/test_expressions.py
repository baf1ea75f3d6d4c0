"""CEL expressions: compiled once, checked for the variables a program may read, never given a float."""

from decimal import Decimal

import pytest

from patron.domain.engine import CompiledProgram, decide
from patron.domain.events import as_expression_context
from patron.domain.expressions import Expression, ExpressionError
from patron.domain.program import EXPRESSION_VARIABLES
from tests.unit.factories import document, member, purchase


def compile_(source):
    return Expression.compile(source, allowed_variables=EXPRESSION_VARIABLES)


@pytest.mark.parametrize(
    ("source", "variable", "fields"),
    [
        ('event.total_minor > 1 && event.channel == "web"', "event", {"total_minor", "channel"}),
        ('event.total_minor > 1 && event.channel == "web"', "member", set()),
        ('has(member.attributes.tier) && member.attributes.tier == "gold"', "member", {"attributes"}),
        ('event.store == "event.lines member.id"', "event", {"store"}),  # names inside strings do not count
        ('event.store == "event"', "event", {"store"}),
        ('event.lines.exists(l, l.category == "vinyl")', "event", {"lines"}),
        # event_line is another identifier, not the event
        (
            "event.lines.exists(event_line, event_line.quantity > 1) || event.item_count > 0",
            "event",
            {"lines", "item_count"},
        ),
    ],
)
def test_fields_of_names_the_fields_read(source, variable, fields):
    assert compile_(source).fields_of(variable) == frozenset(fields)


@pytest.mark.parametrize(
    "source",
    [
        'event["total_minor"] > 0',  # indexed: could read any field
        "size(event) > 3",
        "event.total_minor > 0 || event == {}",
    ],
)
def test_fields_of_says_any_when_the_whole_variable_is_used(source):
    assert compile_(source).fields_of("event") is None


@pytest.mark.parametrize(
    ("source", "message_part"),
    [
        ("event.total_minor >", "Failed to parse"),
        ("customer.vip", "unknown variable(s) ['customer']"),
        ("event.total_minor > threshold", "unknown variable(s) ['threshold']"),
    ],
)
def test_compile_refuses_bad_expressions(source, message_part):
    with pytest.raises(ExpressionError) as caught:
        compile_(source)
    assert message_part in str(caught.value)


def test_macro_variables_are_not_unknown_variables():
    expression = compile_('event.lines.exists(line, line.sku == "LP-1")')
    assert expression.is_true({"event": {"lines": [{"sku": "LP-1"}]}}) is True
    assert expression.is_true({"event": {"lines": [{"sku": "CD"}]}}) is False


def test_a_macro_variable_used_outside_its_macro_fails_when_run_not_silently():
    expression = compile_("event.lines.exists(l, l.quantity > 1) || l.quantity > 0")
    with pytest.raises(ExpressionError):
        expression.is_true({"event": {"lines": []}})


@pytest.mark.parametrize(
    ("source", "context"),
    [
        ('member.attributes.tier == "gold"', {"member": {"attributes": {}}}),  # a missing key
        ("event.lines[3].quantity > 0", {"event": {"lines": []}}),
        ("event.total_minor / event.item_count > 100", {"event": {"total_minor": 5, "item_count": 0}}),
        ("event.total_minor % 0 == 1", {"event": {"total_minor": 5}}),
        ("event.total_minor * 9223372036854775807 > 0", {"event": {"total_minor": 5}}),
        ('event.total_minor + "1" > 0', {"event": {"total_minor": 5}}),
    ],
)
def test_every_runtime_failure_is_an_expression_error(source, context):
    with pytest.raises(ExpressionError):
        compile_(source).is_true(context)


def test_integer_refuses_booleans_and_non_integers():
    with pytest.raises(ExpressionError):
        compile_("true").integer({})
    with pytest.raises(ExpressionError):
        compile_("1.5").integer({})
    assert compile_("2 * 21").integer({}) == 42


def test_money_reaches_expressions_as_integer_minor_units():
    event = purchase("12.345", lines=({"sku": "A", "quantity": 3, "unit_price": "0.105"},))
    context = as_expression_context(event)
    assert context["total_minor"] == 1235  # half up
    assert context["item_count"] == 3
    assert context["lines"] == [{"sku": "A", "category": "", "quantity": 3, "unit_price_minor": 11}]
    assert not any(isinstance(v, float) for v in context.values())


def test_rules_reading_different_fields_of_one_event_all_see_their_fields():
    compiled = CompiledProgram.compile(
        document(
            rules=[
                {"id": "a", "event": "purchase", "when": 'event.channel == "web"', "points": {"fixed": 1}},
                {"id": "b", "event": "purchase", "when": "event.item_count == 2", "points": {"fixed": 10}},
                {
                    "id": "c",
                    "event": "purchase",
                    "when": 'member.attributes.tier == "gold"',
                    "points": {"expression": "event.total_minor / 100"},
                },
            ]
        ),
        1,
    )
    assert compiled.context_shapes["purchase"] == {
        "event": frozenset({"channel", "item_count", "total_minor"}),
        "member": frozenset({"attributes"}),
    }
    event = purchase(Decimal("30.00"), lines=({"sku": "A", "quantity": 2, "unit_price": "15.00"},), channel="web")
    assert decide(compiled, member(attributes={"tier": "gold"}), event).points == 41
