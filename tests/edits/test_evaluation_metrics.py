"""Unit tests of the evaluation instruments on tiny models built here."""

import math

import pytest
import torch
import torch.nn.functional as F

from lethe.edits.evaluation.agreement import AgreementSettings, agreement_sums, ndcg_at_k
from lethe.edits.evaluation.batching import left_pad
from lethe.edits.evaluation.datasets import MemorizationItem
from lethe.edits.evaluation.generation import greedy_generate
from lethe.edits.evaluation.levenshtein import levenshtein, similarity
from lethe.edits.evaluation.memorization import (
    MemorizationSettings,
    aggregate,
    extraction_strength,
    score_items,
)
from lethe.edits.evaluation.perplexity import total_loss

VOCAB = 40
PAD = 0


@pytest.fixture(scope="module")
def tiny_llama() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=PAD,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # sharper logits than the default init, so greedy choices are stable
        model.lm_head.weight.mul_(20)
    return model.eval()


class Successor(torch.nn.Module):
    """Predicts token t + 1 (mod vocabulary) after every token t; ignores the cache."""

    def forward(self, input_ids: torch.Tensor, **_: object) -> object:
        logits = F.one_hot((input_ids + 1) % VOCAB, VOCAB).float()
        return type("Out", (), {"logits": logits, "past_key_values": None})()


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("kitten", "sitting", 3),
        ("flaw", "lawn", 2),
        ("", "abc", 3),
        ("abc", "abc", 0),
        ("abcdef", "azced", 3),
    ],
)
def test_levenshtein_known_pairs(a: str, b: str, distance: int) -> None:
    assert levenshtein([ord(c) for c in a], [ord(c) for c in b]) == distance
    assert levenshtein([ord(c) for c in b], [ord(c) for c in a]) == distance


def test_similarity_is_one_minus_distance_over_target_length() -> None:
    assert similarity([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert similarity([1, 2, 9, 4], [1, 2, 3, 4]) == 0.75
    assert similarity([], [1, 2]) == 0.0


def test_extraction_strength() -> None:
    assert extraction_strength([True, True, True, True]) == 1.0
    assert extraction_strength([False, True, True, True]) == 0.75
    assert extraction_strength([True, True, True, False]) == 0.0
    assert extraction_strength([True, False, True, True]) == 0.5


def test_left_pad_aligns_last_tokens_and_restarts_positions() -> None:
    ids, mask, positions = left_pad([[5, 6, 7], [8]], PAD)
    assert ids.tolist() == [[5, 6, 7], [PAD, PAD, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert positions[1, -1].item() == 0 and positions[0].tolist() == [0, 1, 2]


def _right_padded_greedy(model: torch.nn.Module, prompts: list[list[int]], steps: int) -> list:
    """The bug the instrument avoids: right padding, continuing after the pads."""
    width = max(map(len, prompts))
    rows = torch.tensor([p + [PAD] * (width - len(p)) for p in prompts])
    with torch.no_grad():
        for _ in range(steps):
            next_token = model(input_ids=rows).logits[:, -1].argmax(-1)
            rows = torch.cat([rows, next_token[:, None]], dim=1)
    return rows[:, width:].tolist()


def test_left_padded_batch_matches_each_item_alone(tiny_llama: torch.nn.Module) -> None:
    generator = torch.Generator().manual_seed(1)
    prompts = [
        torch.randint(1, VOCAB, (length,), generator=generator).tolist() for length in (3, 9, 5, 12)
    ]
    alone = [greedy_generate(tiny_llama, [p], 6, PAD)[0] for p in prompts]
    batched = greedy_generate(tiny_llama, prompts, 6, PAD, batch_size=4)
    assert batched == alone
    # Without the cache, one full forward per step gives the same tokens.
    assert _right_padded_greedy(tiny_llama, [prompts[3]], 6)[0] == alone[3]
    # Right padding changes the continuations of the shorter prompts.
    assert _right_padded_greedy(tiny_llama, prompts, 6) != alone


def test_generation_lengths_per_prompt(tiny_llama: torch.nn.Module) -> None:
    outputs = greedy_generate(tiny_llama, [[3, 4], [5, 6, 7]], [2, 5], PAD)
    assert [len(o) for o in outputs] == [2, 5]


def test_recitation_scores_on_a_model_that_knows_the_successor() -> None:
    items = [
        MemorizationItem("exact", "a", [1, 2, 3], [4, 5, 6, 7]),
        MemorizationItem("last wrong", "a", [10, 11], [12, 13, 14, 99 % VOCAB]),
        MemorizationItem("first wrong", "b", [20], [30, 22, 23, 24]),
    ]
    scores = score_items(Successor(), items, PAD, MemorizationSettings(batch_size=2))
    exact, last_wrong, first_wrong = scores
    assert exact.strict and exact.loose and exact.similarity == 1.0
    assert exact.extraction_strength == 1.0 and exact.exact_memorization == 1.0
    assert not last_wrong.strict and last_wrong.loose and last_wrong.similarity == 0.75
    assert last_wrong.extraction_strength == 0.0 and last_wrong.exact_memorization == 0.75
    # Greedy: 21 22 23 24 against 30 22 23 24, one substitution. Teacher-forced: 30 is wrong and,
    # as the context of the next position, makes 22 wrong too; the last two are right.
    assert first_wrong.generated_ids == [21, 22, 23, 24]
    assert first_wrong.similarity == 0.75 and not first_wrong.strict
    assert first_wrong.exact_memorization == 0.5 and first_wrong.extraction_strength == 0.5
    summary = aggregate(scores)
    assert summary["strict"] == pytest.approx(1 / 3)
    assert summary["loose"] == 1.0


def test_perplexity_is_exp_of_mean_token_loss(tiny_llama: torch.nn.Module) -> None:
    generator = torch.Generator().manual_seed(2)
    blocks = [torch.randint(1, VOCAB, (n,), generator=generator).tolist() for n in (16, 16, 3)]
    loss_sum, count = total_loss(tiny_llama, blocks, PAD, batch_size=2)
    by_hand = []
    with torch.no_grad():
        for block in blocks:
            ids = torch.tensor([block])
            logits = tiny_llama(input_ids=ids).logits[0, :-1]
            by_hand += F.cross_entropy(logits, ids[0, 1:], reduction="none").tolist()
    assert count == len(by_hand) == 15 + 15 + 2
    assert math.exp(loss_sum / count) == pytest.approx(math.exp(sum(by_hand) / len(by_hand)), 1e-5)
    # The paper code's mean of per-batch exponentials is a different number on uneven batches.
    first, second = by_hand[:30], by_hand[30:]
    per_batch = (math.exp(sum(first) / 30) + math.exp(sum(second) / 2)) / 2
    assert abs(per_batch - math.exp(loss_sum / count)) > 1e-3


def test_ndcg_of_known_rankings() -> None:
    reference = torch.tensor([[1, 2, 3]])
    assert ndcg_at_k(reference, reference).item() == pytest.approx(1.0)
    swapped = ndcg_at_k(torch.tensor([[2, 1, 3]]), reference).item()
    ideal = 3 + 2 / math.log2(3) + 1 / 2
    assert swapped == pytest.approx((2 + 3 / math.log2(3) + 1 / 2) / ideal)
    assert ndcg_at_k(torch.tensor([[7, 8, 9]]), reference).item() == 0.0


def test_agreement_is_one_with_itself_and_lower_when_perturbed(tiny_llama) -> None:
    import copy

    generator = torch.Generator().manual_seed(3)
    blocks = [torch.randint(1, VOCAB, (20,), generator=generator).tolist() for _ in range(4)]
    settings = AgreementSettings(k=10, batch_size=2)
    ndcg, top1, count = agreement_sums(tiny_llama, tiny_llama, blocks, PAD, settings)
    assert ndcg / count == pytest.approx(1.0) and top1 == count == 80
    perturbed = copy.deepcopy(tiny_llama)
    with torch.no_grad():
        for parameter in perturbed.model.layers.parameters():
            parameter.add_(0.5 * torch.randn(parameter.shape, generator=generator))
    ndcg, _, count = agreement_sums(perturbed, tiny_llama, blocks, PAD, settings)
    assert 0.0 < ndcg / count < 0.95


class _WordTokenizer:
    """Words -> ids 10, 11, ...; with `bos`, every encoding starts with id 1, as Gemma's does."""

    def __init__(self, bos: bool) -> None:
        self.bos = bos

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        lead = [1] if self.bos and add_special_tokens else []
        return {"input_ids": lead + [10 + len(word) for word in text.split()]}


def test_every_block_starts_like_a_document_and_the_text_is_cut_once() -> None:
    from lethe.edits.evaluation.token_stream import token_blocks

    texts = ["a bb ccc dddd eeeee ffffff g", "hh iii"]  # ids 11 12 13 14 15 16 11, then 12 13
    with_bos = token_blocks(_WordTokenizer(bos=True), texts, seq_len=4)
    assert with_bos == [[1, 11, 12, 13], [1, 14, 15, 16], [1, 11, 1, 12], [1, 13]]
    without = token_blocks(_WordTokenizer(bos=False), texts, seq_len=4)
    assert without == [[11, 12, 13, 14], [15, 16, 11, 12]]  # a last block of one token predicts nothing
