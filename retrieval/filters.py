"""Metadata filters from clients: checked against an index's `SearchLimits` before SQLite sees them.

`parse_filter_json` reads the service's `filter_json`; `check_filter` checks a filter however it
was made (the service, `lethe index search --filter`, the Python API), so every caller refuses
the same filters with the same message: `<field>: ...`, naming the key where there is one.
"""

from collections.abc import Mapping
from typing import cast

from lethe.edits.errors import shown
from lethe.retrieval.errors import InvalidArgument
from lethe.retrieval.inputs import load_json, scalar_problem, text_problem
from lethe.retrieval.limits import FILTER_DEPTH, SearchLimits
from lethe.retrieval.store import MetadataFilter

_SCALARS = "a string, number, boolean or a non-empty list of them"


def check_filter(where: object, limits: SearchLimits, field: str = "filter") -> MetadataFilter:
    """`where` if it is a filter `limits` allow (see `store.MetadataFilter`); else `InvalidArgument`."""
    if not isinstance(where, Mapping):
        raise InvalidArgument(f"{field}: must be an object of keys to values")
    if len(where) > limits.max_filter_keys:
        raise InvalidArgument(f"{field}: {len(where)} keys; the limit is {limits.max_filter_keys}")
    values_in_all = 0
    for key, wanted in where.items():
        if not isinstance(key, str) or not key:
            raise InvalidArgument(f"{field}: keys must be non-empty strings, got {shown(key)}")
        if len(key) > limits.max_filter_key_chars:
            raise InvalidArgument(
                f"{field}: key {shown(key)} has {len(key)} characters; "
                f"the limit is {limits.max_filter_key_chars}"
            )
        problem = text_problem(key)
        if problem is None and ('"' in key or "\\" in key):
            problem = "contains a quote or a backslash, which a filter cannot match"
        if problem:
            raise InvalidArgument(f"{field}: key {shown(key)} {problem}")
        values = list(wanted) if isinstance(wanted, list | tuple) else [wanted]
        if not values:
            raise InvalidArgument(f"{field}: {shown(key)} must be {_SCALARS}")
        values_in_all += len(values)
        if values_in_all > limits.max_filter_values:
            raise InvalidArgument(
                f"{field}: more than {limits.max_filter_values} values in all; narrow the filter"
            )
        for value in values:
            if isinstance(value, list | tuple | Mapping) or value is None:
                raise InvalidArgument(f"{field}: {shown(key)} must be {_SCALARS}")
            if isinstance(value, str) and len(value) > limits.max_filter_value_chars:
                raise InvalidArgument(
                    f"{field}: {shown(key)} has a value of {len(value)} characters; "
                    f"the limit is {limits.max_filter_value_chars}"
                )
            problem = scalar_problem(value)
            if problem:
                raise InvalidArgument(f"{field}: {shown(key)}: {problem}")
    return cast(MetadataFilter, where)  # checked above: str keys, scalar or list values


def parse_filter_json(text: str, limits: SearchLimits, field: str = "filter_json") -> MetadataFilter | None:
    """The filter in JSON `text` (empty: no filter), refused unparsed when it is too long or nested
    deeper than a filter can be."""
    if not text:
        return None
    where = load_json(text, field, max_chars=limits.max_filter_chars, max_depth=FILTER_DEPTH)
    if not isinstance(where, dict):
        raise InvalidArgument(f"{field}: must be a JSON object")
    return check_filter(where, limits, field)
