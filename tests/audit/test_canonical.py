"""The standard-library encoder gives orjson's canonical bytes, or refuses where orjson refuses."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from genesis.audit.canonical import canonical_json
from genesis.audit.chain import ChainHasher, prepare, seal
from genesis.audit.events import GENESIS_HASH, AuditEvent, canonical_bytes
from tests.audit.chainlib import build_chain

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=400)

TRICKY = [chr(i) for i in range(0x20)] + [
    '"', "\\", "/", "\x7f", "\x80", "\x85", "\u2028", "\u2029", "\ufeff", "\ufffd", "\uffff", "é", "😀",
    "\ud800", "\udbff", "\udc00", "\udfff", "u", "0", "{", "}", ":", ",",
]  # fmt: skip
INT_EDGES = [0, -1, 1, 2**53, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30, -(10**30)]

texts = st.one_of(
    st.text(st.characters(exclude_categories=())),  # every code point, lone surrogates included
    st.text(st.sampled_from(TRICKY)),
)
ints = st.one_of(st.integers(), st.sampled_from(INT_EDGES))
values = st.one_of(st.none(), texts, ints)
rows = st.tuples(*[values] * 17, st.just("h" * 64))
# Only what orjson can encode: no lone surrogate, integers within 64 bits.
encodable_texts = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",))),
    st.text(st.sampled_from([c for c in TRICKY if not 0xD800 <= ord(c) <= 0xDFFF])),
)
encodable = st.one_of(st.none(), encodable_texts, st.integers(-(2**63), 2**64 - 1))
encodable_rows = st.tuples(*[encodable] * 17, st.just("h" * 64))


def shaped(text: st.SearchStrategy[str], integer: st.SearchStrategy[int]) -> st.SearchStrategy[tuple[Any, ...]]:
    """Rows shaped like stored ones (integers in seq, occurred_at_us, status): the encoder's fast path."""
    column = [st.one_of(st.none(), text)] * 17
    column[0] = column[2] = integer
    column[11] = st.one_of(st.none(), integer)
    return st.tuples(*column, st.just("h" * 64))


def orjson_or_refusal(row: tuple[Any, ...]) -> bytes | None:
    try:
        return canonical_bytes(row)
    except (TypeError, orjson.JSONEncodeError):
        return None


def stdlib_or_refusal(row: tuple[Any, ...]) -> bytes | None:
    try:
        return canonical_json(row)
    except (TypeError, ValueError):
        return None


@DETERMINISTIC
@given(st.one_of(rows, shaped(texts, ints)))
@example((1, "e", 2, "AUDIT", "a", "success", "x", None, None, None, None, None, "c", None, "m", "{}", "0" * 64, ""))
@example((2**64, *[None] * 16, ""))
@example((1, "\ud800", *[None] * 15, ""))
@example((1, "\x00\x1b\x7f\u2028", 2**63, *["\\u0000"] * 14, ""))
def test_stdlib_and_orjson_encoders_agree_on_every_string_int_and_null_row(row: tuple[Any, ...]) -> None:
    assert stdlib_or_refusal(row) == orjson_or_refusal(row)


@DETERMINISTIC
@given(st.one_of(encodable_rows, shaped(encodable_texts, st.integers(-(2**63), 2**64 - 1))))
def test_every_encodable_row_has_the_same_bytes_from_both_encoders(row: tuple[Any, ...]) -> None:
    expected = canonical_bytes(row)
    assert canonical_json(row) == expected


def test_orjson_refuses_exactly_lone_surrogates_and_integers_beyond_64_bits() -> None:
    base = list(build_chain(1)[0])
    for column, value in ((14, "a\ud800b"), (0, 2**64), (2, -(2**63) - 1), (11, 10**20)):
        row = tuple([*base[:column], value, *base[column + 1 :]])
        assert orjson_or_refusal(row) is None
        with pytest.raises(ValueError):
            canonical_json(row)
    assert canonical_json(tuple(base)) == canonical_bytes(tuple(base))


@pytest.mark.parametrize("value", [True, 1.5, b"bytes", ["list"], {"a": 1}])
def test_values_outside_the_specified_types_are_refused(value: object) -> None:
    """orjson would encode these; the spec allows only strings, integers and null, so the verifier refuses."""
    row = list(build_chain(1)[0])
    for column in (0, 11, 14):
        bad = tuple([*row[:column], value, *row[column + 1 :]])
        with pytest.raises(TypeError):
            canonical_json(bad)


def test_short_rows_are_refused() -> None:
    with pytest.raises(ValueError):
        canonical_json(build_chain(1)[0][:16])


def test_real_chains_encode_identically() -> None:
    for row in build_chain(300):
        assert canonical_json(row) == canonical_bytes(row)


@DETERMINISTIC
@given(st.lists(texts, min_size=5, max_size=5), st.dictionaries(texts, st.one_of(texts, ints), max_size=4))
def test_prepare_leaves_no_string_orjson_refuses_so_stored_rows_always_encode(
    fields: list[str], metadata: dict[str, Any]
) -> None:
    """Lone surrogates and NULs are cleaned before hashing: what is stored always has canonical bytes."""
    action, actor, message, path, correlation_id = fields
    event = AuditEvent(action=action, actor=actor, message=message, path=path, correlation_id=correlation_id,
                       metadata=metadata, user_agent=actor, request_id=message)  # fmt: skip
    link = prepare(event)
    for value in link.row:
        if isinstance(value, str):
            value.encode("utf-8")  # no lone surrogate left
            assert "\x00" not in value
    (row,) = seal([link], 41, GENESIS_HASH, ChainHasher())
    assert canonical_json(row) == canonical_bytes(row)
