"""Conditions and point formulas in CEL, compiled once at publish time and never passed to eval.

Money is handed to CEL as integer minor units (``total_minor``), so no float is ever part of a decision.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
        return cls(source, program)

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

    def is_true(self, context: Variables) -> bool:
        result = self._run(context)
        if not isinstance(result, bool):
            raise ExpressionError(f"{self.source!r} must be true or false, got {result!r}")
        return result

    def integer(self, context: Variables) -> int:
        result = self._run(context)
        if isinstance(result, bool) or not isinstance(result, int):
            raise ExpressionError(f"{self.source!r} must give a whole number of points, got {result!r}")
        return result
