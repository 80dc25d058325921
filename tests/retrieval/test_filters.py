"""Filters and JSON from clients: every hostile shape the fuzzer found is a named InvalidArgument.

Each case here raised something other than a `LetheError` before (RecursionError, sqlite3's
OperationalError, UnicodeEncodeError, OverflowError, a ValueError from int()), which the service
answers as INTERNAL.
"""

import json

import pytest

from lethe.edits.errors import shown
from lethe.retrieval.errors import InvalidArgument
from lethe.retrieval.filters import check_filter, parse_filter_json
from lethe.retrieval.inputs import json_depth, load_json, text_problem
from lethe.retrieval.limits import SQLITE_MAX_VARIABLES, SearchLimits

LIMITS = SearchLimits()


def refused(text: str, limits: SearchLimits = LIMITS) -> str:
    with pytest.raises(InvalidArgument) as error:
        parse_filter_json(text, limits)
    assert error.value.kind == "invalid_argument"
    message = str(error.value)
    assert message.startswith("filter_json: "), message
    assert len(message) < 600, "a client's value is not echoed in full"
    return message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"a": ' * 1000 + "1" + "}" * 1000, "nested deeper than 2 levels"),
        ("[" * 10_000, "nested deeper than 2 levels"),
        ('{"a": [[1]]}', "nested deeper than 2 levels"),
        (json.dumps({"a\x00b": 1}), "key 'a\\x00b' contains a NUL character"),
        (json.dumps({"a": "x\x00y"}), "'a': contains a NUL character"),
        ('{"\\ud800": 1}', "lone surrogate (U+D800)"),
        ('{"lang": "\\udfff"}', "'lang': contains a lone surrogate (U+DFFF)"),
        ('{"lang": ["en", "\\ud83d"]}', "'lang': contains a lone surrogate"),
        (json.dumps({f"k{n}": n for n in range(2000)}), "characters; the limit is 16384"),
        (json.dumps({f"k{n}": n for n in range(33)}), "33 keys; the limit is 32"),
        (json.dumps({"a": list(range(200)), "b": list(range(57))}), "more than 256 values in all"),
        (json.dumps({"k" * 300: 1}), "has 300 characters; the limit is 256"),
        (json.dumps({"a": "v" * 1025}), "'a' has a value of 1025 characters; the limit is 1024"),
        ('{"a": NaN}', "NaN is not allowed"),
        ('{"a": -Infinity}', "-Infinity is not allowed"),
        ('{"a": 1e400}', "'a': numbers must be finite"),
        ('{"a": ' + "1" * 5000 + "}", "a number with too many digits"),
        ('{"a": 18446744073709551616}', "'a': integers must fit in 64 bits"),
        ('{"a": null}', "'a' must be a string, number, boolean or a non-empty list of them"),
        ('{"a": []}', "'a' must be a string"),
        ('{"a": {}}', "'a' must be a string"),
        ('{"a\\"b": 1}', "contains a quote or a backslash"),
        ('{"": 1}', "keys must be non-empty strings"),
        ("[1]", "must be a JSON object"),
        ("{", "not valid JSON"),
    ],
)
def test_bad_filters_are_refused_naming_the_field(text: str, says: str) -> None:
    message = refused(text)
    assert says in message, message


def test_every_limit_is_a_setting() -> None:
    narrow = SearchLimits(max_filter_keys=1, max_filter_values=2, max_filter_chars=40)
    assert "2 keys; the limit is 1" in refused('{"a": 1, "b": 2}', narrow)
    assert "more than 2 values" in refused('{"a": [1, 2, 3]}', narrow)
    assert "41 characters; the limit is 40" in refused(json.dumps({"a": "x" * 32}), narrow)
    wide = SearchLimits(max_filter_keys=99, max_filter_values=900, max_filter_chars=100_000)
    many = {f"k{n}": n for n in range(99)}
    assert parse_filter_json(json.dumps(many), wide) == many


def test_limits_cannot_exceed_what_sqlite_binds() -> None:
    with pytest.raises(ValueError, match="SQLite's parameter limit"):
        SearchLimits(max_filter_keys=100, max_filter_values=SQLITE_MAX_VARIABLES)


def test_a_hundred_kilobyte_key_is_not_echoed() -> None:
    key = "k" * 100_000
    message = refused(json.dumps({key: 1}), SearchLimits(max_filter_chars=200_000))
    assert "(100000 characters)" in message and key not in message


def test_good_filters_pass_unchanged() -> None:
    assert parse_filter_json("", LIMITS) is None
    where = {"lang": "en", "year": [2020, 2021], "ok": True, "score": 0.5, "doc_id": "x"}
    assert parse_filter_json(json.dumps(where), LIMITS) == where
    assert check_filter(where, LIMITS) is where


def test_check_filter_names_its_field() -> None:
    with pytest.raises(InvalidArgument, match=r"^filter: key 'a\\x00' contains a NUL"):
        check_filter({"a\x00": 1}, LIMITS)
    with pytest.raises(InvalidArgument, match=r"^--filter: must be an object"):
        check_filter(["a"], LIMITS, "--filter")


def test_json_depth_skips_strings_and_stops_early() -> None:
    assert json_depth('{"a": "[[[[{{{{", "b": [1, [2]]}', 10) == 3
    assert json_depth('"\\"[[["', 10) == 0
    assert json_depth("[" * 1_000_000, 5) == 6


def test_text_problem_and_shown() -> None:
    assert text_problem("fine text, ünïcode") is None
    assert text_problem("a\x00b") == "contains a NUL character"
    assert text_problem("a\x00b", allow_nul=True) is None
    assert "U+D800" in (text_problem("x\ud800") or "")
    assert shown("short") == "'short'"
    long = shown("y" * 1000)
    assert long.startswith("'" + "y" * 200 + "'...") and len(long) < 240
    assert shown("\ud800").isascii(), "a surrogate is escaped, so the message encodes"


def test_load_json_has_no_length_bound_only_when_asked() -> None:
    with pytest.raises(InvalidArgument, match=r"^where: 11 characters; the limit is 10$"):
        load_json('"' + "x" * 9 + '"', "where", max_chars=10, max_depth=1)
    assert load_json('"' + "x" * 9 + '"', "where", max_chars=None, max_depth=1) == "x" * 9
