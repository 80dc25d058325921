"""Hypothesis strategies for every request message of the Lethe API, for `test_fuzz.py`.

Every field has a strategy of values a client may rightly send and one of hostile values: empty,
huge and unicode strings, NUL, escaped lone surrogates, negative and huge numbers, NaN and
infinities, too many stop strings, unknown variant and index names, odd JSON, templates and
paths. A message is drawn all valid, with one hostile field (so each field's refusal is exercised
on its own), or with any mix (`fields`). Sizes are bounded so that one call stays fast on two CPU
cores: at most 8 tokens are generated, documents are short.
"""

import json
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from hypothesis import strategies as st

from lethe.service.gen.lethe.v1 import admin_pb2, common_pb2, inference_pb2, retrieval_pb2

Strategy = st.SearchStrategy
INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)

# The fuzzed server serves these; FUZZ_NAMES are the variants the fuzz may load and unload.
SERVED = ("base", "pruned", "pruned+rag")
RAG = "pruned+rag"
FUZZ_NAMES = ("fuzz-a", "fuzz-b", "fuzz-rag")
INDEX = "facts"
FACT_IDS = ("mirren", "zorblat", "kettle", "pelagic")
QUESTION = "Question: What is the capital of Ostra?\nAnswer:"

ODD = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\n\t\r",
    "\u202e\u0301\u200b",
    "\ufeff",
    "\U0010ffff",
    "\ufffd",
    "😀",
    "名前",
    "%s%n%x",
    "{}",
    "{0}",
    "{prompt}",
    "'; DROP TABLE documents; --",
    "\\ud800",
    "..",
    "../",
    "null",
    "NaN",
)


@dataclass(frozen=True)
class Case:
    """One fuzzed call: the request (a tuple of them for a client stream), the call's timeout
    (None: the test's default, which a call must not exceed) and whether the test cancels it.
    `repr` is short: hypothesis prints failing cases, and some hold 1 MB strings."""

    request: Any
    timeout: float | None = None
    cancel: bool = False

    def __repr__(self) -> str:
        text = repr(self.request)
        if len(text) > 1500:
            text = text[:1500] + f"... ({len(text)} characters)"
        return f"Case(timeout={self.timeout}, cancel={self.cancel}, request={text})"


TIMEOUTS = st.sampled_from((None, None, None, None, None, 0.001, 0.05))
CANCEL = st.sampled_from((False, False, False, True))

MODES = ("valid", "one hostile", "one hostile", "any")


@st.composite
def fields(draw, spec: dict[str, tuple[Strategy, Strategy]], modes=MODES) -> tuple[str, dict[str, Any]]:
    """Values for a message's fields from `spec` (name: (valid, hostile)): all valid, one hostile
    and the rest valid, or each from either; returns the mode with the values."""
    mode = draw(st.sampled_from(modes))
    bad = draw(st.sampled_from(sorted(spec))) if mode == "one hostile" else None
    values = {}
    for name, (valid, hostile) in spec.items():
        strategy = valid | hostile if mode == "any" else hostile if name == bad else valid
        values[name] = draw(strategy)
    return mode, values


def huge(sizes=(257, 4_001, 100_001)) -> Strategy[str]:
    """A long string made by repeating one piece (cheap to generate, unlike a drawn one)."""
    pieces = st.sampled_from(("x", "é", "😀", "\x00", " ", "{"))
    return st.builds(operator.mul, pieces, st.sampled_from(sizes))


def odd_text(max_size: int = 40, sizes=(257, 4_001, 100_001)) -> Strategy[str]:
    return st.one_of(
        st.sampled_from(ODD),
        st.text(max_size=max_size),
        st.text(st.characters(codec="utf-8"), max_size=max_size),
        huge(sizes),
    )


def odd_name(*also: str) -> Strategy[str]:
    return st.sampled_from(("", "nope", "Base", "base ", "fuzz-zz", *also)) | odd_text(20, (129, 100_001))


SPECIAL_FLOATS = (0.0, -0.0, 1e-45, 1e-39, 1e-6, 1e-5, 0.5, 1.0, 1.0000001, 2.0, 3.4e38, -1.0)
FLOATS32 = st.one_of(
    st.sampled_from((*SPECIAL_FLOATS, float("nan"), float("inf"), float("-inf"))),
    st.floats(width=32),
)


# -- Inference ----------------------------------------------------------------------------------
HOSTILE_STOPS = st.one_of(
    st.lists(odd_text(8, sizes=(256, 257)), max_size=4),
    st.lists(st.sampled_from(("a", " ", "\n", "</s>", "x" * 256, "😀")), max_size=20),
    st.builds(lambda n: ["x"] * n, st.sampled_from((16, 17, 1_000, 100_000))),
)
SAMPLING = {
    # Above 8 only values the server must refuse: a run stays short.
    "max_tokens": (st.integers(0, 8), st.sampled_from((-1, -(2**31), 4_001, 2**31 - 1))),
    "temperature": (st.none() | st.sampled_from((0.0, 0.7, 1.0)) | st.floats(0, 2, width=32), FLOATS32),
    "top_p": (st.none() | st.floats(0, 1, width=32, exclude_min=True), FLOATS32),
    "top_k": (st.integers(0, 50), st.integers(-2, 300) | INT32),
    "seed": (st.none() | st.integers(0, 2**32), st.sampled_from((-(2**63), 2**63 - 1, -1)) | INT64),
    "stop": (st.lists(st.text(min_size=1, max_size=8), max_size=4), HOSTILE_STOPS),
}


@st.composite
def sampling_params(draw) -> inference_pb2.SamplingParams | None:
    if draw(st.booleans()):
        return None
    _, values = draw(fields(SAMPLING))
    params = inference_pb2.SamplingParams(
        max_tokens=values["max_tokens"], top_k=values["top_k"], stop=values["stop"]
    )
    for name in ("temperature", "top_p", "seed"):
        if values[name] is not None:
            setattr(params, name, values[name])
    return params


GENERATE = {
    "variant": (st.sampled_from(("", "base", "pruned", RAG)), odd_name(*FUZZ_NAMES)),
    "prompt": (
        st.sampled_from((QUESTION, "Hello", "x", "The bridge over the Quell", "a" * 4_089))
        | st.text(min_size=1, max_size=60),
        odd_text(60, sizes=(4_095, 4_200, 200_000, 200_001)),
    ),
    "sampling": (sampling_params(), sampling_params()),
    "request_id": (
        st.sampled_from(("", "req-1", "r" * 128)) | st.text(max_size=20),
        odd_text(20, sizes=(129, 100_001)),
    ),
    "retrieval": (st.none() | st.booleans(), st.none() | st.booleans()),
    "retrieval_k": (st.integers(0, 5), st.integers(-1, 5) | st.sampled_from((100, 101)) | INT32),
    "retrieval_query": (st.sampled_from(("", "bridge", "capital of Ostra")), odd_text(20, (4_000, 4_001))),
}


@st.composite
def generate_requests(draw) -> Case:
    mode, values = draw(fields(GENERATE))
    if mode == "valid" and values["variant"] != RAG:  # only the alias has a retrieval policy
        values.update(retrieval=None, retrieval_k=0, retrieval_query="")
    sampling, retrieval = values.pop("sampling"), values.pop("retrieval")
    request = inference_pb2.GenerateRequest(**values)
    if sampling is not None:
        request.sampling.CopyFrom(sampling)
    if retrieval is not None:
        request.retrieval = retrieval
    return Case(request, draw(TIMEOUTS), draw(CANCEL))


def normal_generate(variant: str = "base") -> inference_pb2.GenerateRequest:
    request = inference_pb2.GenerateRequest(variant=variant, prompt=QUESTION)
    request.sampling.max_tokens = 2
    request.sampling.temperature = 0
    return request


# -- JSON: filters and metadata -----------------------------------------------------------------
def _nested(depth: int, kind: str) -> str:
    if kind == "list":
        return '{"kind": ' + "[" * depth + "1" + "]" * depth + "}"
    return '{"kind": ' + '{"a": ' * depth + "1" + "}" * depth + "}"


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
ODD_JSON = st.one_of(
    st.builds(json.dumps, st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4)),
    st.builds(_nested, st.sampled_from((2, 10, 100, 1_000, 10_000)), st.sampled_from(("list", "dict"))),
    st.builds(
        lambda n: json.dumps({f"k{i}": i for i in range(n)}), st.sampled_from((100, 999, 2_000, 20_000))
    ),
    st.sampled_from(
        (
            "[]",
            "1",
            '"x"',
            "null",
            "true",
            "NaN",
            "Infinity",
            "1e999",
            "{",
            "{'a': 1}",
            '{"kind": []}',
            '{"kind": [[1]]}',
            '{"kind": {"a": 1}}',
            '{"kind": null}',
            '{"year": NaN}',
            '{"year": -Infinity}',
            '{"year": 1e999}',
            '{"year": ' + "9" * 400 + "}",
            '{"year": ' + "9" * 20 + "}",
            '{"a\\u0000b": 1}',
            '{"kind": "a\\u0000b"}',
            '{"a\x00": 1}',
            '{"\\ud800": "x"}',
            '{"kind": "\\udfff"}',
            '{"kind": ["\\ud800", 1]}',
            '{"": 1}',
            '{"a": 1, "a": 2}',
            "\ufeff{}",
        )
    ),
    odd_text(20, sizes=(4_001, 100_001)),
)
"""Everything a filter or metadata must not be, and some that may: deep nesting, many keys,
non-objects, NUL and lone surrogates (escaped: a protobuf string cannot hold one), huge numbers."""

FILTERS = (
    "",
    "{}",
    '{"kind": "city"}',
    '{"year": [1820, 1931]}',
    '{"doc_id": "mirren"}',
    '{"title": "Mirren"}',
    '{"source": "household", "kind": "object"}',
    '{"kind": true}',
    '{"year": 1931.0}',
)
METADATA = ("", '{"kind": "city"}', '{"year": 2020, "tags": ["a", "b"]}', '{"lang": "en", "score": 0.5}')


# -- Retrieval ----------------------------------------------------------------------------------
K = (st.integers(1, 5), st.integers(-1, 0) | st.sampled_from((100, 101)) | INT32)
SEARCH = {
    "index": (st.just(INDEX), odd_name()),
    "query": (
        st.sampled_from(("capital of Ostra", "bridge", "tea")) | st.text(min_size=1, max_size=30),
        odd_text(30, (4_000, 4_001)),
    ),
    "k": K,
    "filter_json": (st.sampled_from(FILTERS), ODD_JSON),
}


@st.composite
def search_requests(draw) -> Case:
    _, values = draw(fields(SEARCH))
    return Case(retrieval_pb2.SearchRequest(**values), draw(TIMEOUTS))


@st.composite
def index_stats_requests(draw) -> Case:
    _, values = draw(fields({"index": (st.just(INDEX), odd_name())}))
    return Case(retrieval_pb2.IndexStatsRequest(**values), draw(TIMEOUTS))


DOCUMENT = {
    "id": (
        st.builds("fz-{}".format, st.integers(0, 10**9)),
        st.sampled_from(FACT_IDS) | odd_text(20, (512, 513)),
    ),
    "text": (
        st.sampled_from(("Ostra has a coast.", "x")) | st.text(min_size=1, max_size=40),
        odd_text(40, sizes=(257, 2_000)),
    ),
    "title": (st.just("") | st.text(max_size=20), odd_text(20, sizes=(257, 4_001))),
    "source": (st.just("") | st.text(max_size=20), odd_text(20, sizes=(257, 4_001))),
    "metadata_json": (st.sampled_from(METADATA), ODD_JSON),
}


# One more than the server's `max_documents_per_add` (10,000 by default).
MANY_DOCUMENTS = 10_001


@st.composite
def add_documents_streams(draw) -> Case:
    """A stream of requests: the first names the index, later ones may repeat it, leave it empty
    or name another; 0-3 documents each, all valid (with ids unique in the call) or not."""
    _, shape = draw(
        fields(
            {
                "messages": (st.integers(1, 2), st.sampled_from((0, 3))),
                "documents": (st.integers(1, 2), st.sampled_from((0, 3, MANY_DOCUMENTS))),
                "document_modes": (st.just(("valid",)), st.just(MODES)),
                "index": (st.just(INDEX), odd_name()),
                "later_index": (st.sampled_from(("", INDEX)), odd_name("other")),
                "replace": (st.booleans(), st.booleans()),
            }
        )
    )
    messages = []
    for number in range(shape["messages"]):
        if shape["documents"] == MANY_DOCUMENTS:  # refused before anything is embedded
            docs = [retrieval_pb2.Document(id=f"many-{i}", text="x") for i in range(MANY_DOCUMENTS)]
        else:
            docs = []
            for position in range(shape["documents"]):
                mode, values = draw(fields(DOCUMENT, shape["document_modes"]))
                if mode == "valid":
                    values["id"] += f"-{number}.{position}"
                docs.append(retrieval_pb2.Document(**values))
        index = shape["index"] if number == 0 else shape["later_index"]
        messages.append(
            retrieval_pb2.AddDocumentsRequest(index=index, documents=docs, replace=shape["replace"])
        )
    return Case(tuple(messages), draw(TIMEOUTS), draw(CANCEL))


@st.composite
def delete_documents_requests(draw) -> Case:
    """Ids never added, or hostile ones; never the four facts, which other calls search (the test
    swaps valid ids for ones it added, so that some deletes succeed)."""
    ids = st.lists(st.builds("fz-{}".format, st.integers(0, 10**9)), min_size=1, max_size=3)
    hostile = st.one_of(
        st.lists(odd_text(20), max_size=4),
        st.builds(lambda n: [f"absent-{i}" for i in range(n)], st.sampled_from((1_000, 10_000))),
    )
    _, values = draw(fields({"index": (st.just(INDEX), odd_name()), "ids": (ids, hostile)}))
    return Case(retrieval_pb2.DeleteDocumentsRequest(**values), draw(TIMEOUTS))


# -- Admin --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sources:
    """Directories the fuzzed server may be asked to load from, built by the test's fixture."""

    loadable: tuple[str, ...]  # checkpoints and models under the roots: they load
    failing: tuple[str, ...]  # under the roots, with a config.json, but broken
    refused: tuple[str, ...]  # outside the roots, not checkpoints, or not paths at all


TEMPLATES = (
    "{prompt}{context}",
    "{context}{prompt}{x}",
    "{context}{prompt}{0}",
    "{context}{prompt}{",
    "{context}{prompt}}",
    "{context!r}{prompt}",
    "{context.__class__}{prompt}",
    "{prompt[0]}{context}",
    "{context:>10000}{prompt}",
    "{context:d}{prompt}",
    "{context}",
    "{{context}}{prompt}",
    "{context}\x00{prompt}",
)
PASSAGE_FORMATS = ("{nope}", "{0}", "{title", "{text!s:>5}", "{title.upper}", "{text:d}", "x", "\x00")
POLICY = {
    "index": (st.just(INDEX), odd_name()),
    "k": (st.integers(0, 5), st.sampled_from((-1, 100, 101)) | INT32),
    "min_score": (st.floats(-1, 1, width=32), FLOATS32),
    "template": (
        st.sampled_from(("", "{context}\n\n{prompt}", "Context:\n{context}\nQ: {prompt}")),
        st.sampled_from(TEMPLATES) | odd_text(20),
    ),
    "passage_format": (
        st.sampled_from(("", "{title}: {text}", "{text}", "[{title}] {text}")),
        st.sampled_from(PASSAGE_FORMATS) | odd_text(20),
    ),
}


@st.composite
def retrieval_policies(draw) -> common_pb2.RetrievalPolicy | None:
    if draw(st.booleans()):
        return None
    _, values = draw(fields(POLICY))
    return common_pb2.RetrievalPolicy(**values)


HOSTILE_OPTIONS = st.dictionaries(
    st.sampled_from(("max_batch_size", "max_queue", "dtype", "admit_window_s", "device", "max_model_len"))
    | odd_text(10),
    st.sampled_from(("1", "0", "-1", "1e9", "nan", "inf", "float16", "cuda:7", "cpu", "true", ""))
    | odd_text(10),
    min_size=1,
    max_size=3,
)
VALID_OPTIONS = st.sampled_from(({}, {"max_batch_size": "4"}, {"max_queue": "8", "admit_window_s": "0"}))


def load_variant_requests(sources: Sources) -> Strategy[Case]:
    spec = {
        "name": (st.sampled_from(FUZZ_NAMES), st.sampled_from(SERVED) | odd_name()),
        "source": (
            st.tuples(st.sampled_from(("checkpoint", "model")), st.sampled_from(sources.loadable))
            | st.tuples(st.just("alias_of"), st.sampled_from(SERVED)),
            st.tuples(
                st.sampled_from(("checkpoint", "model")),
                st.sampled_from(sources.failing + sources.refused) | odd_text(20, (4_096, 100_001)),
            )
            | st.tuples(st.just("model"), st.sampled_from(("gemma3-270m", "gpt2", "meta-llama/Llama-3.1-8B")))
            | st.tuples(st.just("alias_of"), odd_name(*FUZZ_NAMES))
            | st.just((None, None)),
        ),
        "engine": (
            st.sampled_from(("", "transformers")),
            st.sampled_from(("vllm", "VLLM", "tensorrt")) | odd_text(10),
        ),
        "engine_options": (VALID_OPTIONS, HOSTILE_OPTIONS),
        "wait": (st.booleans(), st.booleans()),
        "retrieval": (retrieval_policies(), retrieval_policies()),
    }

    def build(drawn: tuple[str, dict[str, Any]], timeout: float | None) -> Case:
        _, values = drawn
        (source, where), policy = values.pop("source"), values.pop("retrieval")
        if values["engine"] == "vllm" and where in sources.loadable:
            values["engine"] = ""  # a load that would succeed never starts vLLM: it takes a minute
        request = admin_pb2.LoadVariantRequest(**values)
        if source is not None:
            setattr(request, source, where)
        if policy is not None:
            request.retrieval.CopyFrom(policy)
        return Case(request, timeout)

    return st.builds(build, fields(spec), TIMEOUTS)


def load_source_requests(sources: Sources) -> Strategy[Case]:
    """LoadVariant with every source the fixture made, each under both fields, the rest valid."""
    paths = sources.loadable + sources.failing + sources.refused
    return st.builds(
        lambda name, field, path, wait: Case(
            admin_pb2.LoadVariantRequest(name=name, wait=wait, **{field: path})
        ),
        st.sampled_from(FUZZ_NAMES),
        st.sampled_from(("checkpoint", "model")),
        st.sampled_from(paths),
        st.booleans(),
    )


@st.composite
def unload_variant_requests(draw) -> Case:
    """Never base or pruned+rag (the health probe and the other calls use them); `pruned` is
    refused while pruned+rag serves it."""
    _, values = draw(fields({"name": (st.sampled_from(FUZZ_NAMES), odd_name("pruned"))}))
    return Case(admin_pb2.UnloadVariantRequest(**values), draw(TIMEOUTS))


@st.composite
def get_variant_requests(draw) -> Case:
    _, values = draw(fields({"name": (st.sampled_from((*SERVED, *FUZZ_NAMES)), odd_name())}))
    return Case(admin_pb2.GetVariantRequest(**values), draw(TIMEOUTS))


@st.composite
def empty_requests(draw, message: type) -> Case:
    return Case(message(), draw(TIMEOUTS))


# -- health and reflection ----------------------------------------------------------------------
HEALTH_NAMES = ("", "lethe.v1.Inference", "lethe.v1.Retrieval", "lethe.v1.Admin", "lethe.v1.Variant/base")


@st.composite
def health_requests(draw) -> Case:
    _, values = draw(fields({"service": (st.sampled_from(HEALTH_NAMES), odd_name("lethe.v1.Variant/x"))}))
    return Case(health_pb2.HealthCheckRequest(**values), draw(TIMEOUTS))


REFLECTION_KINDS = (
    "list_services",
    "file_by_filename",
    "file_containing_symbol",
    "file_containing_extension",
    "all_extension_numbers_of_type",
)
SYMBOLS = (
    st.sampled_from(("lethe.v1.Inference", "lethe/v1/inference.proto", "lethe.v1.GenerateRequest")),
    odd_text(20),
)


@st.composite
def reflection_streams(draw) -> Case:
    messages = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(REFLECTION_KINDS))
        _, values = draw(
            fields({"host": (st.just(""), odd_text(10)), "symbol": SYMBOLS, "number": (INT32, INT32)})
        )
        request = reflection_pb2.ServerReflectionRequest(host=values["host"])
        if kind == "list_services":
            request.list_services = values["symbol"]
        elif kind == "file_containing_extension":
            request.file_containing_extension.containing_type = values["symbol"]
            request.file_containing_extension.extension_number = values["number"]
        else:
            setattr(request, kind, values["symbol"])
        messages.append(request)
    return Case(tuple(messages), draw(TIMEOUTS))


# -- bytes that are no message ------------------------------------------------------------------
@dataclass(frozen=True)
class WireMethod:
    path: str
    client_streaming: bool
    server_streaming: bool


def wire_methods() -> tuple[WireMethod, ...]:
    """Every method of every service (health's endless Watch aside), read from the descriptors."""
    methods = []
    for module in (inference_pb2, admin_pb2, retrieval_pb2, health_pb2, reflection_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                if method.full_name != "grpc.health.v1.Health.Watch":
                    path = f"/{service.full_name}/{method.name}"
                    methods.append(WireMethod(path, method.client_streaming, method.server_streaming))
    return tuple(methods)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (a string, bytes or a message) in protobuf's wire format."""
    return bytes([number << 3 | 2, len(payload)]) + payload


BAD_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"a\x80b")
WIRE_PAYLOADS = st.one_of(
    st.binary(max_size=64),
    # A string field (numbers 1-8) that is not UTF-8, or a truncated field, a bad tag, a bad varint.
    st.builds(_field, st.integers(1, 8), st.sampled_from(BAD_UTF8)),
    st.builds(
        lambda n, tail: _field(n, b"xyz")[:-1] + tail, st.integers(1, 8), st.sampled_from((b"", b"\x00"))
    ),
    st.sampled_from((b"\x00", b"\x07", b"\x08" + b"\xff" * 11, b"\x0f\x01", b"\x12\x7f")),
)


def path_sources(
    root: Path, loadable: list[Path], relative: list[str], failing: list[Path], not_checkpoints: list[Path]
) -> Sources:
    """The sources for LoadVariant: the loadable directories (absolute, and `relative` names under
    a root), the failing ones, and paths that must be refused (escapes with `..`, absolute paths
    outside the roots, NUL, a symlink out of the roots, directories without a config.json)."""
    escape = root / "escape"
    if not escape.exists():
        escape.symlink_to("/etc")
    refused = [
        "",
        "\x00",
        "a\x00b",
        str(loadable[0]) + "\x00",
        "..",
        "../../../../../../etc",
        "/",
        "/etc",
        "/etc/passwd",
        "/proc/self",
        "~",
        "~/.ssh",
        "~nosuchuser/x",
        str(root) + "/../../../../../../etc",
        str(escape),
        str(escape) + "/ssl",
        str(loadable[0] / "config.json"),
        str(root / "missing"),
        str(root / ("a" * 300)),
        str(root / "/".join(["a" * 200] * 30)),
        *(str(p) for p in not_checkpoints),
    ]
    return Sources(
        loadable=(*(str(p) for p in loadable), *relative),
        failing=tuple(str(p) for p in failing),
        refused=tuple(refused),
    )
