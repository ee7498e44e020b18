"""Parameter specifications shared by the indicator and strategy registries.

A :class:`ParamSpec` describes one tunable parameter (name, type, default, range)
so that an API layer can list it and fill in defaults. The values themselves are
checked once, by the computation's guards (:mod:`genesis.analytics.validation`):
the kernel for a period, the strategy for its levels and cross-parameter rules
(``fast < slow``). ``tests/analytics/test_registry.py`` holds every declared bound
to the bound the guards enforce.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from genesis.analytics.types import ParamValue
from genesis.analytics.validation import check_known

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
) -> dict[str, object]:
    """Refuse unknown parameter names and fill in defaults.

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
        Every parameter of ``specs``, in declaration order, with the caller's values as
        given (the computation checks them).

    Raises
    ------
    InvalidInput
        If a name is unknown; ``details["supported"]`` lists the accepted names.
    """
    given = {} if given is None else given
    check_known(sorted(given), [spec.name for spec in specs], what=f"{owner} parameter")
    return {spec.name: given.get(spec.name, spec.default) for spec in specs}


@dataclass(frozen=True, slots=True)
class ParametrizedSpec:
    """What every registry entry has: a name, a one-line summary and its parameters.

    :class:`~genesis.analytics.registry.IndicatorSpec` and
    :class:`~genesis.analytics.registry.SignalStrategySpec` add what they compute.

    Attributes
    ----------
    name : str
        Lowercase registry key.
    summary : str
        One line for listings.
    params : tuple of ParamSpec
        Accepted keyword parameters with defaults and the bounds their guards enforce.
    """

    name: str
    summary: str
    params: tuple[ParamSpec, ...]

    def resolve(self, params: Mapping[str, object] | None = None) -> dict[str, object]:
        """Refuse unknown parameter names and fill in defaults (values are checked by the computation)."""
        return resolve_params(self.name, self.params, params)

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description: name, summary and params (subclasses add theirs)."""
        return {"name": self.name, "summary": self.summary, "params": [p.describe() for p in self.params]}
