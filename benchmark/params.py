"""Hyperparameters declared with their constraints, checked once when they are built (before any work).

Like scikit-learn's `_parameter_constraints`, each `Params` dataclass names, next to its fields, what
each accepts:

    @dataclass(frozen=True)
    class Params(CheckedParams):
        solver: str = "torch"
        num_wd: int = 45
        constraints: ClassVar[Constraints] = {"solver": Options("sklearn", "torch"), "num_wd": Interval(int, 1)}

`build_params(Params, {"solvr": "torch"}, "linear")` then fails with one message naming the fix.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from benchmark.errors import UserError
from benchmark.registry import unknown_name_message


class Constraint:
    """What one parameter accepts. `normalise` returns the accepted value (lists become tuples,
    numeric text becomes a number) or raises ValueError; `invalid` is a value it must refuse."""

    def normalise(self, value: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    invalid: Any = None


@dataclass(frozen=True)
class Interval(Constraint):
    """A number of `kind` (int or float) in [low, high] (or (low, high] with `open_low`)."""

    kind: type
    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def normalise(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError
        number = self.kind(float(value)) if self.kind is float else self._integer(value)
        if not math.isfinite(number) or not self._inside(number):
            raise ValueError
        return number

    @staticmethod
    def _integer(value: Any) -> int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError
        return int(value)

    def _inside(self, number: float) -> bool:
        above = self.low is None or (number > self.low if self.open_low else number >= self.low)
        return above and (self.high is None or number <= self.high)

    def describe(self) -> str:
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{'an integer' if self.kind is int else 'a number'} in {'(' if self.open_low else '['}{low}, {high}]"

    @property
    def invalid(self) -> Any:
        if self.low is not None:
            return self.low - 1
        return self.high + 1 if self.high is not None else "not-a-number"


@dataclass(frozen=True)
class Options(Constraint):
    """One of a fixed set of values (strings or an enum's members)."""

    values: tuple[Any, ...]

    def __init__(self, *values: Any):
        object.__setattr__(self, "values", tuple(values))

    def normalise(self, value: Any) -> Any:
        if value not in self.values:
            raise ValueError
        return self.values[self.values.index(value)]  # the declared member (an enum's, where given)

    def describe(self) -> str:
        return "one of " + ", ".join(repr(str(v)) for v in self.values)

    invalid = "no-such-option"


@dataclass(frozen=True)
class Boolean(Constraint):
    def normalise(self, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError
        return value

    def describe(self) -> str:
        return "true or false"

    invalid = "maybe"


@dataclass(frozen=True)
class Text(Constraint):
    """Free text (a file path, a model name); `must_contain` a placeholder such as "{}"."""

    must_contain: str = ""

    def normalise(self, value: Any) -> Any:
        if not isinstance(value, str) or not value or self.must_contain not in value:
            raise ValueError
        return value

    def describe(self) -> str:
        return "a non-empty string" + (f" containing {self.must_contain!r}" if self.must_contain else "")

    invalid = 7


@dataclass(frozen=True)
class Each(Constraint):
    """A non-empty list whose every item satisfies `item`."""

    item: Constraint

    def normalise(self, value: Any) -> Any:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ValueError
        values = tuple(self.item.normalise(v) for v in value)
        if not values:
            raise ValueError
        return values

    def describe(self) -> str:
        return f"a non-empty list, each {self.item.describe()}"

    @property
    def invalid(self) -> Any:
        return [self.item.invalid]


@dataclass(frozen=True)
class Optional(Constraint):
    """None, or a value satisfying `inner`."""

    inner: Constraint

    def normalise(self, value: Any) -> Any:
        return None if value is None else self.inner.normalise(value)

    def describe(self) -> str:
        return f"null or {self.inner.describe()}"

    @property
    def invalid(self) -> Any:
        return self.inner.invalid


Constraints = dict[str, Constraint]
P = TypeVar("P", bound="CheckedParams")


class CheckedParams:
    """Mixin for frozen `Params` dataclasses: every field is checked against `constraints` on creation.

    `added_later` names fields added after results were stored: while all of them are at their defaults
    they stay out of the cell key (`key_params`), so the cells stored before they existed keep their
    keys; once one is set, all of them are in it."""

    constraints: ClassVar[Constraints] = {}
    added_later: ClassVar[tuple[str, ...]] = ()

    def key_params(self) -> dict[str, Any]:
        defaults = {f.name: f.default for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        if any(getattr(self, name) != defaults[name] for name in self.added_later):
            return dict(vars(self))
        return {name: value for name, value in vars(self).items() if name not in self.added_later}

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            constraint = self.constraints.get(field.name)
            if constraint is None:
                continue
            value = getattr(self, field.name)
            try:
                object.__setattr__(self, field.name, constraint.normalise(value))
            except (ValueError, TypeError):
                raise UserError(f"parameter {field.name}={value!r} is invalid: it must be {constraint.describe()}"
                                ) from None


def build_params(cls: type[P], given: dict[str, Any], where: str) -> P:
    """`cls(**given)` with unknown names refused (with close matches) and every value checked; any
    mistake is one UserError that starts with `where` (e.g. "linear" or "method simclr")."""
    valid = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key in given:
        if key not in valid:
            raise UserError(f"{where}: " + unknown_name_message("parameter", str(key), valid))
    try:
        return cls(**given)
    except UserError as err:
        raise UserError(f"{where}: {err}") from None


def unconstrained_fields(cls: type) -> list[str]:
    """Fields that declare no constraint (the contract tests require none)."""
    return [f.name for f in dataclasses.fields(cls) if f.name not in getattr(cls, "constraints", {})]
