"""Mining a memorized set: cutting texts into candidates, keep/drop decisions, the report and the CLI."""

import json
import random
import re
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lethe.edits.evaluation import mining
from lethe.edits.evaluation.mining import (
    Candidate,
    MiningSettings,
    Span,
    build_candidates,
    cut,
    judge,
    quote_spans,
    select,
    token_ends,
    window_spans,
)
from lethe.edits.evaluation.mining_report import build_report
from lethe.edits.evaluation.schema import DataRef, ModelRef, read_report
from lethe.edits.evaluation.sources import SourceText, boundaries, load_sources
from lethe.service.cli import app, main

WORDS = "the cat sat on a mat dog ran to red hill sun set over old stone wall moon rose".split()


def word_tokenizer(words: list[str] = WORDS):
    """Word-level tokenizer that splits punctuation off and starts every text with <bos> (id 1)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    vocab = {token: i for i, token in enumerate(specials + list(dict.fromkeys([*words, ".", ",", "?"])))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def source(text: str, id: str = "t", kind: str = "recitation", category: str = "poetry") -> SourceText:
    return SourceText(id=id, title=id, category=category, kind=kind, text=text)


SMALL = MiningSettings(prompt_tokens=4, target_tokens=3, stride=2, quote_tokens=2, quote_context=5)


def test_windows_slide_by_stride_and_need_prompt_plus_target_tokens():
    settings = MiningSettings()
    assert window_spans(111, settings) == []
    assert window_spans(112, settings) == [Span(0, 64, 112)]
    assert window_spans(200, settings) == [Span(0, 64, 112), Span(32, 96, 144), Span(64, 128, 176)]


def test_quotes_take_the_last_tokens_before_an_end_and_cap_their_context():
    settings = MiningSettings()
    # An end 8 tokens in leaves no prompt; a short text's end gives all but its last 8 tokens.
    assert quote_spans([8, 9, 30, 30], settings) == [Span(0, 1, 9), Span(0, 22, 30)]
    # 104 = 64 + 48 - 8 tokens of context at most: what a text too short for a window holds.
    assert quote_spans([112, 200], settings) == [Span(0, 104, 112), Span(88, 192, 200)]


def test_boundaries_are_sentence_clause_and_line_ends():
    text = 'He said "Go." Then; no.\nA line\n\n  Last one?\n'
    ends = boundaries(text)
    assert ends == [13, 19, 23, 30, 43]
    assert [text[end - 4 : end] for end in ends] == ['Go."', "hen;", " no.", "line", "one?"]


def test_token_ends_drop_offsets_inside_a_token():
    offsets = [(0, 3), (3, 4), (5, 9), (9, 12)]  # "abc" "." "defg" ".\nx"
    assert token_ends(offsets, [4, 10, 12]) == [2, 4]


def test_cut_windows_and_quotes_on_known_tokens():
    tokenizer = word_tokenizer()
    text = "the cat sat on a mat . the dog ran to red hill ."
    candidates = cut(source(text), tokenizer, SMALL)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 14
    windows = [c for c in candidates if c.format == "window"]
    # 14 tokens, windows of 4 + 3 every 2 tokens: starts 0, 2, 4, 6.
    assert [c.span for c in windows] == [Span(s, s + 4, s + 7) for s in (0, 2, 4, 6)]
    first = windows[0]
    assert first.prompt_ids == [1, *ids[:4]] and first.target_ids == ids[4:7]
    assert (first.prompt, first.target) == ("the cat sat on", " a mat .")
    quotes = [c for c in candidates if c.format == "quote"]
    # Ends after the two full stops (tokens 7 and 14); 2-token targets, context capped at 5 tokens.
    assert [c.span for c in quotes] == [Span(0, 5, 7), Span(7, 12, 14)]
    assert [(c.prompt, c.target) for c in quotes] == [
        ("the cat sat on a", " mat ."),
        ("the dog ran to red", " hill ."),
    ]


def test_build_candidates_drops_duplicates_and_refrains_the_prompt_already_holds():
    tokenizer = word_tokenizer()
    settings = MiningSettings(quote_tokens=3)
    refrain = source("the sun set .\nthe moon rose .\nthe sun set .", id="refrain")
    twin = source("the sun set .\nthe moon rose .\nthe sun set .", id="twin")
    candidates, dropped = build_candidates([refrain, twin], tokenizer, settings)
    assert [(c.source.id, c.target) for c in candidates] == [
        ("refrain", " sun set ."),
        ("refrain", " moon rose ."),
    ]
    assert dropped == {"duplicate": 2, "repeat": 2}


def _candidate(text: SourceText, fmt: str, span: Span, target: list[int]) -> Candidate:
    return Candidate(text, fmt, span, [1, 2, 3], target, "p", "t")  # type: ignore[arg-type]


def test_select_prefers_strict_and_keeps_one_per_stretch_of_target():
    text = source("x")
    target = [5, 6, 7, 8]
    loose_first = _candidate(text, "window", Span(0, 4, 8), target)
    strict_overlapping = _candidate(text, "window", Span(2, 6, 10), target)
    strict_apart = _candidate(text, "window", Span(4, 8, 12), target)  # touches [6, 10) only at its end
    missed = _candidate(text, "window", Span(8, 12, 16), target)
    quote_same_stretch = _candidate(text, "quote", Span(0, 6, 10), target)
    outputs = [[5, 6, 7, 9], target, [5, 6, 7, 8], [9, 9, 9, 8], target]
    candidates = [loose_first, strict_overlapping, strict_apart, missed, quote_same_stretch]
    outcomes = select(judge(candidates, outputs, 0.75))
    assert [o.strict for o in outcomes] == [False, True, True, False, True]
    assert [o.loose for o in outcomes] == [True, True, True, False, True]
    assert [o.similarity for o in outcomes] == [0.75, 1.0, 1.0, 0.25, 1.0]
    # The strict window wins the stretch [6, 10); [8, 12) overlaps it, so only one more window
    # fits; a quote over the same tokens is a different format and is kept too.
    assert [o.kept for o in outcomes] == [False, True, False, False, True]


def test_mine_restores_candidate_order_and_the_report_counts(monkeypatch):
    tokenizer = word_tokenizer()
    texts = [
        source("the cat sat on a mat . the dog ran to red hill .", id="poem", category="poetry"),
        source("1 2 3", id="count", kind="rule", category="counting"),
        source("the sun set over old stone wall .", id="line", category="quotes"),
    ]
    candidates, dropped = build_candidates(texts[:1] + texts[2:], tokenizer, SMALL)
    recited = {tuple(c.prompt_ids): c.target_ids for c in candidates if c.source.id == "poem"}
    seen_lengths: list[list[int]] = []

    def fake_generate(model, prompts, lengths, pad_id, *, batch_size, progress):
        seen_lengths.append(list(lengths))
        outputs = [recited.get(tuple(p), [3] * n) for p, n in zip(prompts, lengths, strict=True)]
        progress(len(prompts))
        return outputs

    monkeypatch.setattr(mining, "greedy_generate", fake_generate)
    done: list[int] = []
    outcomes = mining.mine(torch.nn.Identity(), candidates, 0, SMALL, done.append)
    assert done == [len(candidates)]
    assert seen_lengths[0] == sorted(seen_lengths[0])  # decoded shortest target first
    assert [o.candidate for o in outcomes] == candidates
    assert all(o.strict == (o.candidate.source.id == "poem") for o in outcomes)
    report = build_report(
        outcomes,
        model=ModelRef(name="fake", path="/fake"),
        sources=DataRef(path="s.jsonl", sha256="0", items=2),
        settings=SMALL.model_dump(),
        dropped=dropped,
        sets={},
        seconds=0.0,
    )
    poem = [c for c in candidates if c.source.id == "poem"]
    windows = [c for c in poem if c.format == "window"]
    assert report.totals.tried == len(candidates)
    assert report.by_category["poetry"].strict == len(poem)
    assert report.by_category["quotes"].model_dump() == {
        "tried": len(candidates) - len(poem), "strict": 0, "loose": 0, "kept": 0, "kept_strict": 0
    }  # fmt: skip
    # Four windows every 2 tokens with 3-token targets: [4, 7) and [8, 11) fit, the others overlap.
    assert len(windows) == 4 and report.by_group["recitation/window"].kept_strict == 2
    assert report.by_group["recitation/quote"].kept == 2
    assert set(report.by_kind) == {"recitation"}


# --- a real tiny model that recites one text -------------------------------------------------

RECITED_WORDS = 130


def _recited_text(seed: int = 0) -> str:
    rng = random.Random(seed)
    words = [rng.choice(WORDS) for _ in range(RECITED_WORDS)]
    for i in range(9, RECITED_WORDS, 10):
        words[i] = "."
    return " ".join(words)


def _train_reciter(directory: Path, text: str) -> Path:
    """A 2-layer Llama trained until greedy decoding from <bos> reproduces `text`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = word_tokenizer()
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(400):
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.01:
            break
    model.eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def reciter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return _train_reciter(tmp_path_factory.mktemp("reciter"), _recited_text())


def _write_sources(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_cli_keeps_what_a_real_model_recites_and_the_set_is_recited(reciter, tmp_path):
    unseen = "the moon rose over red hill . a dog ran to the old stone wall . the sun set on a mat ."
    sources = _write_sources(
        tmp_path / "sources.jsonl",
        [
            {"id": "known", "title": "Known", "category": "poetry", "text": _recited_text()},
            {"id": "unseen", "title": "Unseen", "category": "prose", "text": unseen},
            {"id": "rule", "category": "counting", "kind": "rule", "text": _recited_text()[:40]},
        ],
    )
    out = tmp_path / "set.jsonl"
    runner = CliRunner()
    args = ["eval", "mine", "--model", str(reciter), "--sources", str(sources), "--out", str(out)]
    result = runner.invoke(app, [*args, "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    report = json.loads((tmp_path / "set-report.json").read_text())
    known = report["by_category"]["poetry"]
    # 130 tokens: one 64/48 window and 13 sentence ends, and the model recites every one.
    assert known["tried"] == known["strict"] > 0
    assert report["by_category"]["prose"]["loose"] == 0
    assert {row["source"] for row in rows} == {"known"}
    assert {row["format"] for row in rows} == {"window", "quote"}
    assert all(row["strict"] and row["group"] == f"recitation/{row['format']}" for row in rows)
    assert [row["span"] for row in rows if row["format"] == "window"] == [[0, 64, 112]]
    rules = [json.loads(line) for line in (tmp_path / "set-rules.jsonl").read_text().splitlines()]
    assert rules and {row["kind"] for row in rules} == {"rule"}
    assert report["totals"]["kept"] == len(rows) + len(rules)
    assert "kind/format" in result.output

    # The mined set is what `lethe eval memorization --set` reads, and the model recites all of it.
    evaluated = tmp_path / "mem.json"
    args = ["eval", "memorization", "--model", str(reciter), "--set", str(out), "--out", str(evaluated)]
    assert runner.invoke(app, args).exit_code == 0
    metrics = read_report(evaluated).results[0].metrics
    assert metrics["items"] == len(rows) and metrics["strict"] == 1.0


EVALUATION = Path(__file__).parents[2] / "edits/evaluation"


def _word_runs(text: str, n: int) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def test_shipped_sources_load_and_the_heldout_prose_shares_no_six_words_with_them():
    sources = load_sources(EVALUATION / "memorized/sources.jsonl")
    assert len(sources) >= 300
    assert {s.kind for s in sources} == {"recitation", "rule"}
    heldout = (EVALUATION / "data/heldout-prose.txt").read_text()
    assert len(heldout.split()) >= 6000
    shared = _word_runs(heldout, 6) & set().union(*(_word_runs(s.text, 6) for s in sources))
    assert not shared


def _main_exit(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> int:
    monkeypatch.setattr(sys, "argv", ["lethe", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("not json\n", "sources.jsonl:1"),
        ('{"id": "a", "category": "poetry"}\n', "sources.jsonl:1: text: Field required"),
        ('{"id": "a", "category": "poetry", "text": "x", "kind": "song"}\n', "kind"),
        ('{"id": "a", "category": "poetry", "text": "  "}\n', "white space"),
        ('{"id": "a", "category": "c", "text": "x"}\n\n{"id": "a", "category": "c", "text": "y"}\n',
         "sources.jsonl:3: id 'a' appears twice"),
        ("\n", "holds no texts"),
    ],
)  # fmt: skip
def test_malformed_sources_are_a_user_error(tmp_path, monkeypatch, capsys, content, message):
    path = tmp_path / "sources.jsonl"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "set.jsonl"
    # The sources are read before any model is loaded: this model does not exist either.
    args = ["eval", "mine", "--model", str(tmp_path / "nowhere"), "--sources", str(path), "--out", str(out)]
    assert _main_exit(monkeypatch, args) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: ") and message in stderr and "Traceback" not in stderr
    assert not out.exists()
