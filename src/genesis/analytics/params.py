"""Parameter specifications shared by the indicator and strategy registries.

A :class:`ParamSpec` describes one tunable parameter (name, type, default, range)
so that an API layer can list it, fill in defaults and reject bad values before
any computation runs. Constraints that involve the data (``period`` no larger
than the number of prices) or several parameters (``fast < slow``) are checked by
the computation itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from genesis.analytics.types import ParamValue
from genesis.analytics.validation import check_float, check_int
from genesis.errors import InvalidInput

__all__ = ["ParamSpec", "ParametrizedSpec", "resolve_params"]


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One parameter of an indicator or strategy.

    Attributes
    ----------
    name : str
        Keyword the computation accepts.
    kind : {"integer", "number"}
        JSON-schema type: ``"integer"`` accepts ints only, ``"number"`` any real.
    default : int or float
        Value used when the caller omits the parameter.
    minimum : float
        Lower bound (inclusive unless ``exclusive_minimum``).
    maximum : float or None
        Upper bound (inclusive unless ``exclusive_maximum``), if any.
    description : str
        One line for API listings.
    """

    name: str
    kind: Literal["integer", "number"]
    default: ParamValue
    minimum: float
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    description: str = ""

    def validate(self, value: object) -> ParamValue:
        """Return ``value`` converted to the parameter's type, or raise InvalidInput."""
        if self.kind == "integer":
            maximum = None if self.maximum is None else int(self.maximum)
            return check_int(value, name=self.name, minimum=int(self.minimum), maximum=maximum)
        return check_float(
            value,
            name=self.name,
            minimum=self.minimum,
            maximum=self.maximum,
            exclusive_minimum=self.exclusive_minimum,
            exclusive_maximum=self.exclusive_maximum,
        )

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description (JSON-schema-like keys)."""
        out: dict[str, Any] = {"name": self.name, "type": self.kind, "default": self.default}
        out["exclusiveMinimum" if self.exclusive_minimum else "minimum"] = self.minimum
        if self.maximum is not None:
            out["exclusiveMaximum" if self.exclusive_maximum else "maximum"] = self.maximum
        out["description"] = self.description
        return out


def resolve_params(
    owner: str, specs: Sequence[ParamSpec], given: Mapping[str, object] | None = None
) -> dict[str, ParamValue]:
    """Validate caller parameters against ``specs`` and fill in defaults.

    Parameters
    ----------
    owner : str
        Name of the indicator or strategy, used in error messages.
    specs : sequence of ParamSpec
        Accepted parameters.
    given : mapping, optional
        Parameters supplied by the caller (names are case-sensitive).

    Returns
    -------
    dict
        Every parameter of ``specs``, in declaration order.

    Raises
    ------
    InvalidInput
        If a name is unknown or a value has the wrong type or range.
    """
    given = {} if given is None else given
    names = [spec.name for spec in specs]
    unknown = sorted(set(given) - set(names))
    if unknown:
        accepted = ", ".join(names) if names else "none"
        raise InvalidInput(f"unknown parameter(s) for {owner}: {', '.join(map(str, unknown))}; accepted: {accepted}")
    return {spec.name: spec.validate(given.get(spec.name, spec.default)) for spec in specs}


@dataclass(frozen=True, slots=True)
class ParametrizedSpec:
    """What every registry entry has: a name, a one-line summary and its parameters.

    :class:`~genesis.analytics.indicators.IndicatorSpec` and
    :class:`~genesis.analytics.strategies.SignalStrategySpec` add what they compute.

    Attributes
    ----------
    name : str
        Lowercase registry key.
    summary : str
        One line for listings.
    params : tuple of ParamSpec
        Accepted keyword parameters with defaults and per-value bounds.
    """

    name: str
    summary: str
    params: tuple[ParamSpec, ...]

    def resolve(self, params: Mapping[str, object] | None = None) -> dict[str, ParamValue]:
        """Validate ``params`` (unknown names, types, bounds) and fill in defaults."""
        return resolve_params(self.name, self.params, params)

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description: name, summary and params (subclasses add theirs)."""
        return {"name": self.name, "summary": self.summary, "params": [p.describe() for p in self.params]}
