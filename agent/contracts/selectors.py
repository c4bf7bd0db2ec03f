"""Kubernetes label selectors (DESIGN §3): parse `env=prod, tier in (a,b)` and match label sets.

Applications pick their nodes with a selector, so a typo must fail loudly and point at the bad
part, and matching must follow Kubernetes exactly — except that an empty selector matches no
node (Baetyl's rule), so an application without a selector is never deployed everywhere.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

from agent.contracts import names

# As in Kubernetes' lexer: whitespace and symbols separate tokens, and every other run of
# characters is one identifier (a key, a value, or `in`/`notin` where an operator is expected).
_WHITESPACE = " \t\r\n"
_SYMBOLS = ("!=", "==", "!", "=", "(", ")", ",", ">", "<")  # longest first
_STOP_CHARS = _WHITESPACE + "".join(_SYMBOLS)
_INTEGER_RE = re.compile(r"[+-]?[0-9]+")
_SHOW_WHITESPACE = str.maketrans("\t\r\n", "   ")


class SelectorError(ValueError):
    """A selector text that does not parse; `position` is the 0-based offset of the bad part."""

    def __init__(self, text: str, position: int, reason: str) -> None:
        super().__init__(text, position, reason)
        self.text = text
        self.position = position
        self.reason = reason

    def __str__(self) -> str:
        # The caret line lets a person spot the problem without counting characters.
        shown = self.text.translate(_SHOW_WHITESPACE)
        return (
            f"invalid selector {self.text!r} at position {self.position}: {self.reason}\n"
            f"    {shown}\n    {' ' * self.position}^"
        )


class Operator(enum.StrEnum):
    """How a requirement compares a label; `==` is kept for callers but normalised to `=`."""

    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


_ONE_VALUE = {Operator.EQUALS, Operator.NOT_EQUALS, Operator.GREATER_THAN, Operator.LESS_THAN}
_SET_OPERATORS = {Operator.IN, Operator.NOT_IN}
_ORDER = {operator: index for index, operator in enumerate(Operator)}
_INFIX = {
    Operator.EQUALS: "=",
    Operator.NOT_EQUALS: "!=",
    Operator.GREATER_THAN: ">",
    Operator.LESS_THAN: "<",
}


@dataclass(frozen=True)
class Requirement:
    """One condition on one label key; values are stored sorted and unique so equal means equal.

    Constructing one validates it (a `ValueError` for a bad key, value or value count), so a
    requirement built in code is as trustworthy as a parsed one and always renders parseable text.
    """

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        operator = Operator(self.operator)
        if operator is Operator.DOUBLE_EQUALS:
            operator = Operator.EQUALS
        names.check_label_key(self.key)
        values = tuple(sorted(set(self.values)))
        if operator in _ONE_VALUE and len(values) != 1:
            raise ValueError(f"operator {operator.value!r} needs exactly one value, got {values}")
        if operator in _SET_OPERATORS and (not values or "" in values):
            raise ValueError(f"operator {operator.value!r} needs one or more non-empty values")
        if operator in {Operator.EXISTS, Operator.DOES_NOT_EXIST} and values:
            raise ValueError(f"operator {operator.value!r} takes no values, got {values}")
        if operator in {Operator.GREATER_THAN, Operator.LESS_THAN}:
            if not _INTEGER_RE.fullmatch(values[0]):
                raise ValueError(f"operator {operator.value!r} needs an integer, got {values[0]!r}")
            values = (str(int(values[0])),)
        else:
            for value in values:
                names.check_label_value(value)
        object.__setattr__(self, "operator", operator)
        object.__setattr__(self, "values", values)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Apply Kubernetes semantics: negative operators also match when the key is absent."""
        value = labels.get(self.key)
        match self.operator:
            case Operator.EXISTS:
                return value is not None
            case Operator.DOES_NOT_EXIST:
                return value is None
            case Operator.NOT_EQUALS | Operator.NOT_IN:
                return value not in self.values
            case Operator.GREATER_THAN | Operator.LESS_THAN:
                if value is None or not _INTEGER_RE.fullmatch(value):
                    return False
                if self.operator is Operator.GREATER_THAN:
                    return int(value) > int(self.values[0])
                return int(value) < int(self.values[0])
            case _:  # EQUALS, IN
                return value in self.values

    def __str__(self) -> str:
        if self.operator is Operator.EXISTS:
            return self.key
        if self.operator is Operator.DOES_NOT_EXIST:
            return f"!{self.key}"
        if self.operator in _SET_OPERATORS:
            return f"{self.key} {self.operator.value} ({','.join(self.values)})"
        return f"{self.key}{_INFIX[self.operator]}{self.values[0]}"


@dataclass(frozen=True)
class Selector:
    """Requirements joined by AND, kept sorted and unique so that equal selectors render equally."""

    requirements: tuple[Requirement, ...] = ()

    def __post_init__(self) -> None:
        ordered = sorted(
            set(self.requirements), key=lambda r: (r.key, _ORDER[r.operator], r.values)
        )
        object.__setattr__(self, "requirements", tuple(ordered))

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> Selector:
        """Select the label sets containing all of `labels`; no labels gives the empty selector."""
        return cls(tuple(Requirement(k, Operator.EQUALS, (v,)) for k, v in labels.items()))

    @property
    def is_empty(self) -> bool:
        """True for a selector without requirements, which matches nothing (Baetyl's rule)."""
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when every requirement holds; never for the empty selector."""
        return bool(self.requirements) and all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


@dataclass(frozen=True)
class _Token:
    # Symbol characters never occur inside an identifier, so `text` alone identifies a symbol.
    kind: str  # "ident", "symbol" or "end"
    text: str
    position: int

    def describe(self) -> str:
        return "end of selector" if self.kind == "end" else repr(self.text)

    def ends_requirement(self) -> bool:
        return self.kind == "end" or self.text == ","


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        if text[i] in _WHITESPACE:
            i += 1
            continue
        symbol = next((s for s in _SYMBOLS if text.startswith(s, i)), None)
        if symbol is not None:
            tokens.append(_Token("symbol", symbol, i))
            i += len(symbol)
            continue
        start = i
        while i < len(text) and text[i] not in _STOP_CHARS:
            i += 1
        tokens.append(_Token("ident", text[start:i], start))
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Parser:
    """Recursive descent over the tokens; each method consumes one grammar rule or fails."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._tokens = _tokenize(text)
        self._index = 0

    def _peek(self) -> _Token:
        return self._tokens[self._index]

    def _take(self) -> _Token:
        token = self._tokens[self._index]
        self._index = min(self._index + 1, len(self._tokens) - 1)
        return token

    def _error(self, token: _Token, reason: str) -> SelectorError:
        return SelectorError(self._text, token.position, reason)

    def selector(self) -> Selector:
        if self._peek().kind == "end":
            return Selector()
        requirements = [self._requirement()]
        while (token := self._take()).kind != "end":
            if token.text != ",":
                raise self._error(
                    token,
                    f"expected ',' or end of selector after {str(requirements[-1])!r}, "
                    f"found {token.describe()}",
                )
            requirements.append(self._requirement())
        return Selector(tuple(requirements))

    def _requirement(self) -> Requirement:
        if self._peek().text == "!":
            self._take()
            return Requirement(self._key(), Operator.DOES_NOT_EXIST)
        key = self._key()
        token = self._peek()
        if token.ends_requirement():
            return Requirement(key, Operator.EXISTS)
        self._take()
        if token.kind == "ident" and token.text in {"in", "notin"}:
            return Requirement(key, Operator(token.text), self._value_list(token))
        if token.text in {"=", "==", "!="}:
            return Requirement(key, Operator(token.text), (self._value(token, optional=True),))
        if token.text in {">", "<"}:
            operator = Operator.GREATER_THAN if token.text == ">" else Operator.LESS_THAN
            return Requirement(key, operator, (self._integer(token),))
        raise self._error(
            token,
            f"expected an operator (=, ==, !=, in, notin, >, <) after key {key!r}, "
            f"found {token.describe()}",
        )

    def _key(self) -> str:
        token = self._take()
        if token.kind != "ident":
            raise self._error(token, f"expected a label key or '!', found {token.describe()}")
        try:
            return names.check_label_key(token.text)
        except names.InvalidName as exc:
            raise self._error(token, str(exc)) from exc

    def _value(self, after: _Token, *, optional: bool) -> str:
        # After `=`, `==` or `!=` an empty value is allowed: `k=` means "label k is empty".
        if optional and self._peek().ends_requirement():
            return ""
        token = self._take()
        if token.kind != "ident":
            raise self._error(
                token, f"expected a value after {after.text!r}, found {token.describe()}"
            )
        try:
            return names.check_label_value(token.text)
        except names.InvalidName as exc:
            raise self._error(token, str(exc)) from exc

    def _value_list(self, operator: _Token) -> tuple[str, ...]:
        token = self._take()
        if token.text != "(":
            raise self._error(
                token, f"expected '(' after {operator.text!r}, found {token.describe()}"
            )
        if self._peek().text == ")":
            raise self._error(self._peek(), f"{operator.text!r} needs at least one value")
        values = [self._value(token, optional=False)]
        while (token := self._take()).text != ")":
            if token.text != ",":
                raise self._error(
                    token,
                    f"expected ',' or ')' after value {values[-1]!r}, found {token.describe()}",
                )
            values.append(self._value(token, optional=False))
        return tuple(values)

    def _integer(self, operator: _Token) -> str:
        token = self._take()
        if token.kind != "ident" or not _INTEGER_RE.fullmatch(token.text):
            raise self._error(
                token, f"expected an integer after {operator.text!r}, found {token.describe()}"
            )
        return token.text


def _check_is_text(text: object) -> str:
    if not isinstance(text, str):
        raise SelectorError(
            repr(text), 0, f"a selector must be a string, not {type(text).__name__}"
        )
    return text


def parse(text: str) -> Selector:
    """Parse Kubernetes label-selector text; raise SelectorError naming the bad part.

    An empty or blank text gives the empty selector, which matches nothing.
    """
    return _Parser(_check_is_text(text)).selector()
