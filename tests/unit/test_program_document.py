"""Program documents: what a merchant may publish. Every refusal names the path of the field at fault."""

import pytest
from pydantic import ValidationError

from patron.domain.engine import CompiledProgram
from patron.domain.program import ExpireAfter, ProgramDocument
from patron.services.errors import Invalid
from patron.services.programs import parse_document, read_document
from tests.helpers import DEMO_PROGRAM
from tests.unit.factories import document, error_paths

GIFT = {"id": "tote", "name": "Tote", "cost": 100, "kind": "gift", "stock": 5}
COUPON = {"id": "c5", "name": "$5 off", "cost": 500, "kind": "coupon", "value": "5.00"}


def refused(**fields):
    with pytest.raises(ValidationError) as caught:
        document(**fields)
    return error_paths(caught.value)


def test_the_demo_program_is_valid_and_compiles():
    demo = read_document(DEMO_PROGRAM)
    compiled = CompiledProgram.compile(demo, 1)
    assert demo.timezone == "America/New_York"
    engagement = {"review", "social_share", "follow", "survey", "newsletter", "profile_completion"}
    assert {rule.event for rule in demo.rules} == {"purchase", "signup"} | engagement
    assert [r.rule.id for r in compiled.rules_by_trigger["purchase"]] == [
        "big-basket",
        "crate-digger",
        "new-genre",
        "purchase",
        "quiet-hours",
        "regulars",
    ]
    # Every mechanic of the engine is shown in the demo.
    assert demo.tiers is not None
    assert demo.stamp_cards
    assert demo.campaigns
    assert demo.birthday
    assert demo.anniversary
    assert {r.id for r in demo.rewards if r.min_tier or r.early_access} == {"listening-session", "rsd-exclusive"}
    assert compiled.tracks_progress


def test_a_minimal_document_gets_safe_defaults():
    doc = document()
    assert doc.timezone == "UTC"
    assert doc.pending_days == 0
    assert doc.expiry.policy == "never"
    assert doc.refunds.shortfall.value == "negative_balance"
    assert (doc.rules, doc.rewards) == ((), ())


@pytest.mark.parametrize(
    ("fields", "path", "message_part"),
    [
        ({"rules": [{"id": "a", "event": "purchase", "when": "event.total_minor >"}]}, "rules.0.when", "invalid"),
        (
            {"rules": [{"id": "a", "event": "purchase"}, {"id": "b", "event": "purchase", "when": "customer.vip"}]},
            "rules.1.when",
            "unknown variable",
        ),
        (
            {"rules": [{"id": "a", "event": "purchase", "points": {"expression": "1 +"}}]},
            "rules.0.points.Formula.expression",
            "invalid",
        ),
        ({"rules": [{"id": "a", "event": "purchase", "multiplier": "0"}]}, "rules.0.multiplier", "greater than 0"),
        ({"rules": [{"id": "Bad Id", "event": "purchase"}]}, "rules.0.id", "pattern"),
        (
            {"rules": [{"id": "a", "event": "purchase", "caps": [{"period": "year", "max_times": 1}]}]},
            "rules.0.caps.0.period",
            "",
        ),
        (
            {"rules": [{"id": "a", "event": "purchase", "caps": [{"period": "day", "max_points": 0}]}]},
            "rules.0.caps.0.max_points",
            "",
        ),
        ({"rewards": [COUPON, {**GIFT, "stock": -1}]}, "rewards.1.stock", "greater than or equal to 0"),
        ({"rewards": [{**COUPON, "cost": 0}]}, "rewards.0.cost", "greater than 0"),
        ({"rewards": [{**COUPON, "value": "-5"}]}, "rewards.0.value", "greater than or equal to 0"),
        ({"rewards": [{**COUPON, "kind": "cash"}]}, "rewards.0.kind", ""),
        ({"expiry": {"policy": "after", "months": 0}}, "expiry.after.months", "greater than 0"),
        ({"expiry": {"policy": "after", "days": -3}}, "expiry.after.days", "greater than 0"),
        ({"expiry": {"policy": "sometimes"}}, "expiry", "does not match"),
        ({"expiry": {"policy": "end_of_period", "period": "decade"}}, "expiry.end_of_period.period", ""),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "unknown time zone"),
        ({"timezone": ""}, "timezone", "unknown time zone"),
        ({"timezone": "../../etc/passwd"}, "timezone", "unknown time zone"),
        ({"currency": "usd"}, "currency", "pattern"),
        ({"pending_days": 366}, "pending_days", "less than or equal to 365"),
        ({"pending_days": -1}, "pending_days", "greater than or equal to 0"),
        ({"earning": {"rounding": "bankers"}}, "earning.rounding", ""),
        ({"earning": {"points_per_unit": "0"}}, "earning.points_per_unit", "greater than 0"),
        ({"earning": {"points_per_unit": "NaN"}}, "earning.points_per_unit", ""),
        ({"refunds": {"shortfall": "forgive"}}, "refunds.shortfall", ""),
    ],
)
def test_errors_name_the_path_of_the_field(fields, path, message_part):
    errors = refused(**fields)
    assert path in errors, errors
    assert message_part in errors[path]


@pytest.mark.parametrize(
    ("fields", "path", "message_part"),
    [
        ({"rewards": [COUPON, {**GIFT, "stock": None}]}, "rewards.1", "a gift reward needs 'stock'"),
        ({"rewards": [{**COUPON, "value": None}]}, "rewards.0", "a coupon reward needs 'value'"),
        (
            {"rewards": [{"id": "f", "name": "Free", "cost": 1, "kind": "free_product"}]},
            "rewards.0",
            "needs 'sku'",
        ),
        ({"expiry": {"policy": "after"}}, "expiry.after", "exactly one of days or months"),
        ({"expiry": {"policy": "after", "days": 1, "months": 1}}, "expiry.after", "exactly one of days or months"),
        ({"rules": [{"id": "a", "event": "purchase", "caps": [{"period": "day"}]}]}, "rules.0.caps.0", "max_points"),
        ({"rules": [{"id": "a", "event": "refund", "points": {"fixed": 1}}]}, "rules.0", "refunds claw points back"),
        ({"rules": [{"id": "a", "event": "signup"}]}, "rules.0", "give points as fixed or expression"),
        (
            {"rules": [{"id": "a", "event": "review", "points": {"per_currency_unit": "1"}}]},
            "rules.0",
            "no amount to multiply",
        ),
        (
            {"rules": [{"id": "a", "event": "purchase"}, {"id": "a", "event": "signup", "points": {"fixed": 1}}]},
            "rules",
            "'a' is used twice",
        ),
        ({"rewards": [COUPON, {**GIFT, "id": "c5"}]}, "rewards", "'c5' is used twice"),
    ],
)
def test_errors_across_fields_name_the_enclosing_path_and_the_field(fields, path, message_part):
    errors = refused(**fields)
    assert path in errors, errors
    assert message_part in errors[path]


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"levels": [{"name": "gold"}]}, "levels"),
        ({"earning": {"points_per_dollar": "1"}}, "earning.points_per_dollar"),
        ({"rules": [{"id": "a", "event": "purchase", "condition": "true"}]}, "rules.0.condition"),
        ({"rewards": [{**COUPON, "discount": "5"}]}, "rewards.0.discount"),
        ({"expiry": {"policy": "never", "days": 30}}, "expiry.never.days"),
        ({"refunds": {"shortfall": "write_off", "return_points": True}}, "refunds.return_points"),
    ],
)
def test_unknown_fields_are_refused_not_ignored(fields, path):
    errors = refused(**fields)
    assert errors.get(path) == "Extra inputs are not permitted", errors


def test_points_given_two_ways_are_refused():
    errors = refused(rules=[{"id": "a", "event": "purchase", "points": {"fixed": 5, "per_currency_unit": "1"}}])
    assert all(path.startswith("rules.0.points") for path in errors)


def test_yaml_rules_use_event_so_the_on_key_trap_does_not_apply():
    text = "name: Shop\ncurrency: EUR\nrules:\n  - id: base\n    event: purchase\n"
    doc = ProgramDocument.model_validate(parse_document(text))
    assert doc.rules[0].event == "purchase"
    # YAML 1.1 reads a bare `on` key as true: such a document is refused, and the error names the missing event
    with pytest.raises(ValidationError) as caught:
        ProgramDocument.model_validate(parse_document(text.replace("event:", "on:")))
    assert "rules.0.event" in error_paths(caught.value)


@pytest.mark.parametrize("text", ["- just\n- a list\n", "plain words", "name: [unclosed\n"])
def test_text_that_is_not_a_mapping_is_refused_as_the_document(text):
    with pytest.raises(Invalid) as caught:
        parse_document(text)
    assert caught.value.field == "document"


def test_json_is_accepted_as_yaml():
    doc = ProgramDocument.model_validate(parse_document('{"name": "Shop", "currency": "EUR", "pending_days": 7}'))
    assert doc.pending_days == 7


def test_expiry_policies_parse_to_their_own_types():
    assert isinstance(document(expiry={"policy": "after", "days": 30}).expiry, ExpireAfter)


def test_a_document_round_trips_through_json_unchanged():
    demo = read_document(DEMO_PROGRAM)
    assert ProgramDocument.model_validate_json(demo.model_dump_json()) == demo


def test_documents_are_immutable():
    doc = document()
    with pytest.raises(ValidationError):
        doc.pending_days = 3  # type: ignore[misc]


def test_reward_lookup():
    doc = document(rewards=[COUPON, GIFT])
    assert doc.reward("tote") is not None
    assert doc.reward("tote").stock == 5
    assert doc.reward("missing") is None
