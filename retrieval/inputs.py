"""Checks on text and JSON that come from outside (requests, documents files).

One place, so the service and the CLI refuse the same inputs with the same words, and so that no
untrusted value reaches `json.loads`, SQLite or the embedder in a shape that makes them throw
something other than a `LetheError`:

- JSON nested deeper than its format allows is refused before it is parsed (`json.loads` recurses
  once per level and raises `RecursionError` near 1,000);
- NUL characters and lone surrogates (`"\\ud800"` in JSON decodes to a `str` that cannot be
  encoded as UTF-8, so SQLite, the tokenizer and gRPC's trailers all fail on it) are refused;
- `NaN`, `Infinity`, numbers that overflow a float and integers outside SQLite's 64-bit range are
  refused (SQLite's JSON functions reject `NaN`; it cannot bind a larger integer);
- values echoed back in a message go through `lethe.edits.errors.shown` (cut to 200 characters).
"""

import json
import math
import re
from typing import Any

from lethe.retrieval.errors import InvalidArgument

INT64 = (-(2**63), 2**63 - 1)

_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def text_problem(value: str, *, allow_nul: bool = False) -> str | None:
    """What makes `value` unusable as text (a NUL, a lone surrogate), or None."""
    if not allow_nul and "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(value[error.start])
        return f"contains a lone surrogate (U+{code:04X}), which is not valid Unicode text"
    return None


def scalar_problem(value: object) -> str | None:
    """What makes a JSON scalar unusable as metadata or a filter value (see the module doc), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            return "integers must fit in 64 bits"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "numbers must be finite (no NaN or Infinity)"
    if isinstance(value, str):
        return text_problem(value)
    return "must be a string, number or boolean"


def json_depth(text: str, limit: int) -> int:
    """The nesting depth of the JSON `text` ({} or [] inside each other), counted only up to
    `limit` + 1 so that a hostile input is not scanned to its end. Strings are skipped."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
        elif token in "]}":
            depth -= 1
    return deepest


class _NotFinite(ValueError):
    pass


def _refuse_constant(name: str) -> float:
    raise _NotFinite(f"{name} is not allowed; numbers must be finite")


def load_json(text: str, field: str, *, max_chars: int | None, max_depth: int) -> Any:
    """Parse untrusted JSON `text`, refused with `InvalidArgument("<field>: ...")` when it is
    longer than `max_chars` (None: any length), nested deeper than `max_depth`, not valid JSON,
    or holds a NaN or Infinity or an integer too long to convert."""
    if max_chars is not None and len(text) > max_chars:
        raise InvalidArgument(f"{field}: {len(text)} characters; the limit is {max_chars}")
    if json_depth(text, max_depth) > max_depth:
        raise InvalidArgument(f"{field}: nested deeper than {max_depth} levels")
    problem = text_problem(text, allow_nul=True)  # a raw lone surrogate; escaped ones come later
    if problem:
        raise InvalidArgument(f"{field}: {problem}")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise InvalidArgument(f"{field}: not valid JSON ({error.msg})") from None
    except _NotFinite as error:
        raise InvalidArgument(f"{field}: {error}") from None
    except ValueError:  # int() refuses numbers of more than sys.get_int_max_str_digits() digits
        raise InvalidArgument(f"{field}: a number with too many digits") from None
