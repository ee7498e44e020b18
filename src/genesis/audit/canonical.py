"""The canonical bytes of a stored event row with the standard library alone.

Byte for byte the output of ``genesis.audit.events.canonical_bytes`` (which uses
orjson) for every row whose values are strings, integers or ``None``: the domain of
``docs/audit-format.md`` section 2. It exists so that the offline verifier needs
nothing but the standard library and ``cryptography``; the property test in
``tests/audit/test_canonical.py`` holds the two encoders together.

Rows outside that domain are refused, never encoded differently:

* a value that is not ``str``, ``int`` or ``None`` (``bool`` and ``float`` too): ``TypeError``;
* an integer outside ``[-2**63, 2**64 - 1]``: ``ValueError`` (orjson refuses those too);
* a string with a lone surrogate: ``ValueError`` (``UnicodeEncodeError``), where orjson
  raises its ``JSONEncodeError``. Stored rows never hold one: ``chain.prepare`` replaces
  lone surrogates with ``?`` before the event is hashed, so a row that has one was not
  written by Genesis and fails verification as a modified row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

# The C escaper json.dumps(ensure_ascii=False) uses: '"', '\\' and U+0000..U+001F only,
# with \b \t \n \f \r and lower-case \u00XX, which is exactly orjson's escaping.
_esc: Final = json.encoder.encode_basestring
_INT_MIN: Final = -(1 << 63)
_INT_MAX: Final = (1 << 64) - 1
_dumps: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode

# Column positions (``EVENT_COLUMNS`` order) of the 17 canonical keys, in key order.
CANONICAL_KEYS: Final = (
    ("action", 4), ("actor", 6), ("correlation_id", 12), ("event_id", 1), ("level", 3),
    ("message", 14), ("metadata", 15), ("method", 9), ("occurred_at_us", 2), ("outcome", 5),
    ("path", 10), ("prev_hash", 16), ("request_id", 13), ("seq", 0), ("source_ip", 7),
    ("status", 11), ("user_agent", 8),
)  # fmt: skip


def canonical_json(row: Sequence[Any]) -> bytes:
    """Canonical encoding of a stored row (``EVENT_COLUMNS`` order; a trailing ``hash`` is ignored).

    Raises:
        TypeError: a value that is not a string, an integer or None.
        ValueError: fewer than 17 values, an integer outside 64 bits, a string with a lone surrogate.
    """
    (seq, event_id, occurred, level, action, outcome, actor, source_ip, user_agent, method, path, status,
     correlation_id, request_id, message, metadata, prev_hash) = row[:17]  # fmt: skip
    # Fast path, about 4x json.dumps: the common shape (integers where the spec has them), one
    # f-string. Anything unusual (None in a required column, a wrong type) takes the checked path.
    if (
        type(seq) is int
        and type(occurred) is int
        and (status is None or type(status) is int)
        and _INT_MIN <= seq <= _INT_MAX
        and _INT_MIN <= occurred <= _INT_MAX
        and (status is None or _INT_MIN <= status <= _INT_MAX)
    ):
        try:
            text = (
                f'{{"action":{_esc(action)},"actor":{_esc(actor)},"correlation_id":{_esc(correlation_id)},'
                f'"event_id":{_esc(event_id)},"level":{_esc(level)},"message":{_esc(message)},'
                f'"metadata":{_esc(metadata)},"method":{"null" if method is None else _esc(method)},'
                f'"occurred_at_us":{occurred},"outcome":{_esc(outcome)},'
                f'"path":{"null" if path is None else _esc(path)},"prev_hash":{_esc(prev_hash)},'
                f'"request_id":{"null" if request_id is None else _esc(request_id)},"seq":{seq},'
                f'"source_ip":{"null" if source_ip is None else _esc(source_ip)},'
                f'"status":{"null" if status is None else status},'
                f'"user_agent":{"null" if user_agent is None else _esc(user_agent)}}}'
            )
        except TypeError:
            pass  # a None or a non-string where a string usually is: let the checked path decide
        else:
            return text.encode("utf-8")
    return _checked(row)


def _checked(row: Sequence[Any]) -> bytes:
    obj = {}
    for key, column in CANONICAL_KEYS:
        value = row[column]
        if type(value) is int:
            if not _INT_MIN <= value <= _INT_MAX:
                raise ValueError(f"{key} {value} is outside the 64-bit range")
        elif value is not None and not isinstance(value, str):
            raise TypeError(f"{key} is a {type(value).__name__}; canonical values are strings, integers or null")
        obj[key] = value
    return _dumps(obj).encode("utf-8")
