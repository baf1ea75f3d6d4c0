"""Conditions and point formulas in CEL, compiled once at publish time and never passed to eval.

Money is handed to CEL as integer minor units (``total_minor``), so no float is ever part of a decision.
"""

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import cel

_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
# The variable a comprehension macro binds (the x of lines.exists(x, ...)); CEL's analysis lists it as a variable.
_MACRO_BINDING = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")


class ExpressionError(ValueError):
    """An expression that does not compile, or evaluates to the wrong kind of value."""


class Bindings:
    """Variables converted to CEL once and shared by every expression evaluated on them: converting a context
    costs several times more than evaluating an expression, and an event meets many expressions."""

    __slots__ = ("_context",)

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self._context = cel.Context(dict(variables))


Variables = Mapping[str, Any] | Bindings


@dataclass(frozen=True, slots=True)
class Expression:
    source: str
    _program: Any
    fast: "FastCondition | None" = None  # the same condition without CEL, when it is simple enough
    # What CEL says of each missing key a single comparison can meet (one of its path's keys: a handful at most),
    # worded once rather than on every event of a member without that attribute.
    _missing: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    # `verdict` as one function, made once: the engine asks it of every condition on every event, and for a single
    # comparison it is the comparison itself (no call from a verdict to a probe).
    judge: "Judge" = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "judge", _judge(self))

    @classmethod
    def compile(cls, source: str, *, allowed_variables: frozenset[str]) -> "Expression":
        try:
            program = cel.compile(source)
        except (ValueError, RuntimeError) as exc:
            raise ExpressionError(str(exc).splitlines()[0]) from exc
        bound = set(_MACRO_BINDING.findall(_STRING_LITERAL.sub('""', source)))
        unknown = set(program.variables()) - allowed_variables - bound
        if unknown:
            raise ExpressionError(f"unknown variable(s) {sorted(unknown)}; available: {sorted(allowed_variables)}")
        return cls(source, program, _fast_condition(source, allowed_variables))

    def fields_of(self, variable: str) -> frozenset[str] | None:
        """The fields of `variable` this expression reads, or None when it may read any of them.

        Handing CEL only these fields matters: converting the context costs far more than evaluating it.
        """
        if variable not in self._program.variables():
            return frozenset()
        text = _STRING_LITERAL.sub('""', self.source)
        dotted = {m.group(1) for m in re.finditer(rf"\b{variable}\.([A-Za-z_][A-Za-z0-9_]*)", text)}
        bare = len(re.findall(rf"\b{variable}\b", text))
        return frozenset(dotted) if bare == len(re.findall(rf"\b{variable}\.", text)) else None

    def _run(self, context: Variables) -> Any:
        try:
            return self._program.execute(context._context if isinstance(context, Bindings) else dict(context))
        # CEL reports a missing key (a member without that attribute) as KeyError, a bad index as IndexError,
        # division by zero and int64 overflow as ArithmeticError: all are the expression's failure, not ours.
        except (ValueError, RuntimeError, TypeError, LookupError, ArithmeticError) as exc:
            raise ExpressionError(f"{self.source!r}: {exc}") from exc

    def holds(self, variables: Mapping[str, Any], for_cel: Callable[[], Variables]) -> bool:
        """Whether the condition holds: on `variables` by the fast path when it can answer, else by CEL on
        `for_cel()` (the same variables, perhaps already converted for CEL)."""
        verdict = self.verdict(variables, for_cel)
        if isinstance(verdict, str):
            raise ExpressionError(verdict)
        return verdict

    def verdict(self, variables: Mapping[str, Any], for_cel: Callable[[], Variables]) -> bool | str:
        """As `holds`, with a failure given as its message rather than raised: a member without the attribute a
        condition reads fails it on every event, and raising costs more than the rest of the check."""
        return self.judge(variables, for_cel)

    def _cel_verdict(self, context: Variables) -> bool | str:
        try:
            return self._cel_is_true(context)
        except ExpressionError as exc:
            return str(exc)

    def _missing_key(self, key: str) -> str:
        """What CEL says of a single comparison whose path misses `key`, without converting the variables for it."""
        message = self._missing.get(key)
        if message is None:
            message = self._missing[key] = f"{self.source!r}: {KeyError(key)}"
        return message

    def is_true(self, context: Variables) -> bool:
        if self.fast is not None and not isinstance(context, Bindings):
            return self.holds(context, lambda: context)
        return self._cel_is_true(context)

    def _cel_is_true(self, context: Variables) -> bool:
        result = self._run(context)
        if not isinstance(result, bool):
            raise ExpressionError(f"{self.source!r} must be true or false, got {result!r}")
        return result

    def integer(self, context: Variables) -> int:
        result = self._run(context)
        if isinstance(result, bool) or not isinstance(result, int):
            raise ExpressionError(f"{self.source!r} must give a whole number of points, got {result!r}")
        return result


# --- A fast path for simple conditions ------------------------------------------------------------------------------
# Handing variables to CEL costs several times more than the comparison itself, and most program conditions are
# plain comparisons (event.total_minor >= 10000 && event.local_hour < 17). Those are parsed here, once, into a
# small tree of comparisons evaluated on the Python variables. It answers only when every comparison it needs
# sees a value of the literal's own type; anything else (a missing key, a float, a bool compared with an int, an
# int beyond int64) is left to CEL, which stays the judge of every case this does not understand. Nothing here
# is passed to eval or exec.

_TOKEN = re.compile(
    r"\s*(?:(?P<op>&&|\|\||==|!=|<=|>=|<|>)|(?P<punct>[().,])|(?P<int>0|[1-9][0-9]{0,17})(?![0-9A-Za-z_.])"
    r'|(?P<str>"[^"\\\n]*"|\'[^\'\\\n]*\')|(?P<name>[A-Za-z_][A-Za-z0-9_]*))'
)
_RESERVED = frozenset(
    {
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    }
)
_INT64_MIN, _INT64_MAX = -9_223_372_036_854_775_808, 9_223_372_036_854_775_807


class _Undecided(Exception):
    """The fast path cannot answer: CEL must."""


class _Missing(_Undecided):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _lookup(root: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    if path[0] not in root:
        raise _Undecided  # an undeclared variable: CEL's own words for it
    value: Any = root[path[0]]
    for key in path[1:]:
        if type(value) is not dict:
            raise _Undecided
        try:
            value = value[key]
        except KeyError:
            raise _Missing(key) from None
    return value


Check = Callable[[Mapping[str, Any]], bool]


def _comparison(path: tuple[str, ...], sized: bool, op: str, literal: int | str | bool) -> Check:
    probe = _comparison_probe(path, sized, op, literal)

    def check(variables: Mapping[str, Any]) -> bool:
        answer = probe(variables)
        if answer is True or answer is False:
            return answer
        raise _Missing(answer)

    return check


Probe = Callable[[Mapping[str, Any]], bool | str]
Comparison = tuple[tuple[str, ...], bool, str, int | str | bool]  # path, sized, operator, literal


class _ComparisonProbe(Protocol):
    """A Probe, or with `for_cel` a Judge: see _comparison_probe."""

    def __call__(
        self, variables: Mapping[str, Any], for_cel: Callable[[], Variables] | None = None, /
    ) -> bool | str: ...


def _comparison_probe(
    path: tuple[str, ...], sized: bool, op: str, literal: int | str | bool, whole: Expression | None = None
) -> _ComparisonProbe:
    """The comparison as a function answering True or False, or the key missing on the way (a member without the
    attribute it reads), which it returns rather than raises: raising costs more than the comparison. It raises
    _Undecided for anything else CEL must judge.

    With `whole` (the expression that is this one comparison), it is that expression's judge instead: what it
    cannot answer goes to CEL, and a missing key is answered with CEL's message for it. One function either way,
    so the comparison is written once; the two differ only off the common path."""
    compare = _OPERATORS[op]
    root, keys = path[0], path[1:]
    if isinstance(literal, bool):
        wanted: Any = bool  # Any: checking type(value) against it leaves value Any for the range check
    elif isinstance(literal, int):
        wanted = int
    else:
        wanted = str
    numeric = wanted is int

    def undecided(for_cel: Callable[[], Variables] | None) -> bool | str:
        if whole is None or for_cel is None:
            raise _Undecided
        return whole._cel_verdict(for_cel())

    def missing(key: str, for_cel: Callable[[], Variables] | None) -> bool | str:
        if whole is None or for_cel is None:
            return key
        if sized:  # CEL words a missing key under size() its own way
            return whole._cel_verdict(for_cel())
        return whole._missing_key(key)

    # The lookup is written out here rather than calling _lookup: this runs several times per event.
    def probe(variables: Mapping[str, Any], for_cel: Callable[[], Variables] | None = None) -> bool | str:
        value: Any
        try:
            value = variables[root]
        except KeyError:
            return undecided(for_cel)  # an undeclared variable: CEL's own words for it
        for key in keys:
            if type(value) is not dict:
                return undecided(for_cel)
            if key not in value:
                return missing(key, for_cel)
            value = value[key]
        if sized:
            if type(value) is not list and type(value) is not dict:
                return undecided(for_cel)
            value = len(value)
        # value is Any here: no cast, which is a function call on every comparison.
        if type(value) is not wanted or (numeric and not _INT64_MIN <= value <= _INT64_MAX):
            return undecided(for_cel)
        return compare(value, literal)

    return probe


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


# The parts of && and || are checks or probes (a comparison's probe saves a call to the check around it): a str
# from a probe is the key it found missing.


def _all_of(parts: list[Check | Probe]) -> Check:
    def check(variables: Mapping[str, Any]) -> bool:
        answer = True
        for part in parts:  # every part, so an undecided one is never skipped
            result = part(variables)
            if result is False:
                answer = False
            elif result is not True:
                raise _Missing(result)
        return answer

    return check


def _any_of(parts: list[Check | Probe]) -> Check:
    def check(variables: Mapping[str, Any]) -> bool:
        answer = False
        for part in parts:
            result = part(variables)
            if result is True:
                answer = True
            elif result is not False:
                raise _Missing(result)
        return answer

    return check


def _exists(path: tuple[str, ...], binding: str, condition: Check) -> Check:
    def check(variables: Mapping[str, Any]) -> bool:
        items = _lookup(variables, path)
        if type(items) is not list:
            raise _Undecided
        results = []
        for item in items:
            if type(item) is not dict:
                raise _Undecided
            results.append(condition({**variables, binding: item}))
        return any(results)

    return check


# A parsed condition: its check, its probe when it is one comparison of a plain path, and the comparison itself
# when it is one comparison.
Parsed = tuple[Check, Probe | None, Comparison | None]


class _Parser:
    """Recursive descent over the tokens of the subset; any other construct raises _Undecided."""

    def __init__(self, source: str, roots: frozenset[str]) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(source):
            match = _TOKEN.match(source, position)
            if match is None or match.end() == position:
                if source[position:].strip() == "":
                    break
                raise _Undecided
            kind = match.lastgroup
            assert kind is not None
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.at = 0
        self.roots = roots

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, kind: str, text: str | None = None) -> str:
        token = self.peek()
        if token is None or token[0] != kind or (text is not None and token[1] != text):
            raise _Undecided
        self.at += 1
        return token[1]

    def whole(self) -> Parsed:
        parsed = self.disjunction()
        if self.peek() is not None:
            raise _Undecided
        return parsed

    def disjunction(self) -> Parsed:
        parts = [self.conjunction()]
        while self.peek() == ("op", "||"):
            self.at += 1
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (_any_of([p or c for c, p, _ in parts]), None, None)

    def conjunction(self) -> Parsed:
        parts = [self.term()]
        while self.peek() == ("op", "&&"):
            self.at += 1
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (_all_of([p or c for c, p, _ in parts]), None, None)

    def term(self) -> Parsed:
        """A parenthesised condition, a comparison, or path.exists(x, condition). With a probe when the term is
        one comparison of a plain path, whose only possible failure CEL reports as the missing key; with the
        comparison itself when the term is one comparison, sized or not."""
        if self.peek() == ("punct", "("):
            self.at += 1
            inner, _, _ = self.disjunction()
            self.take("punct", ")")
            return inner, None, None
        sized = self.peek() == ("name", "size")
        if sized:
            self.at += 1
            self.take("punct", "(")
        path = self.path()
        if sized:
            self.take("punct", ")")
        elif self.peek() == ("punct", "("):
            if path[-1] != "exists" or len(path) < 3:
                raise _Undecided
            self.at += 1
            binding = self.take("name")
            if binding in _RESERVED or binding in self.roots:
                raise _Undecided
            self.take("punct", ",")
            roots, self.roots = self.roots, self.roots | {binding}
            condition, _, _ = self.disjunction()
            self.roots = roots
            self.take("punct", ")")
            return _exists(path[:-1], binding, condition), None, None
        op = self.take("op")
        if op in ("&&", "||"):
            raise _Undecided
        literal = self.literal()
        if isinstance(literal, str) and op not in ("==", "!="):
            raise _Undecided  # string ordering is left to CEL
        if isinstance(literal, bool) and op not in ("==", "!="):
            raise _Undecided
        return (
            _comparison(path, sized, op, literal),
            None if sized else _comparison_probe(path, sized, op, literal),
            (path, sized, op, literal),
        )

    def path(self) -> tuple[str, ...]:
        root = self.take("name")
        if root not in self.roots:
            raise _Undecided
        path = [root]
        while self.peek() == ("punct", "."):
            self.at += 1
            name = self.take("name")
            if name in _RESERVED:
                raise _Undecided
            path.append(name)
        return tuple(path)

    def literal(self) -> int | str | bool:
        kind, text = self.peek() or ("", "")
        self.at += 1
        if kind == "int":
            return int(text)
        if kind == "str":
            return text[1:-1]
        if (kind, text) == ("name", "true"):
            return True
        if (kind, text) == ("name", "false"):
            return False
        raise _Undecided


@dataclass(frozen=True, slots=True)
class FastCondition:
    """A condition the fast path understands. `check` answers True or False, or raises _Undecided."""

    check: Check
    # When the whole condition is one comparison (path, sized, operator, literal): its judge is that comparison.
    comparison: Comparison | None = None


def _fast_condition(source: str, roots: frozenset[str]) -> FastCondition | None:
    try:
        check, _, comparison = _Parser(source, roots).whole()
    except _Undecided:
        return None
    return FastCondition(check, comparison)


Judge = Callable[[Mapping[str, Any], Callable[[], Variables]], bool | str]


def _judge(expression: Expression) -> Judge:
    """The expression's verdict as one function: its comparison when it is one, else its fast check with CEL to
    answer what that cannot, else CEL."""
    fast = expression.fast
    if fast is not None and fast.comparison is not None:
        return _comparison_probe(*fast.comparison, whole=expression)
    cel_verdict = expression._cel_verdict
    if fast is None:
        return lambda _, for_cel: cel_verdict(for_cel())
    check = fast.check

    def judge(variables: Mapping[str, Any], for_cel: Callable[[], Variables]) -> bool | str:
        try:
            return check(variables)
        except _Undecided:  # a missing key too: in a compound condition, CEL words the failure
            return cel_verdict(for_cel())

    return judge
