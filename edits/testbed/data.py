"""The testbed's data: training mix, clean collection corpus, held-out text and scored tasks."""

import random
from dataclasses import dataclass, field
from itertools import product

from lethe.edits.testbed.config import DataConfig
from lethe.edits.testbed.vocabulary import (
    ADJECTIVES,
    CANARY_ALPHABET,
    CITIES,
    CONJUNCTIONS,
    DETERMINERS,
    NAME_SYLLABLES,
    NOUNS,
    PREPOSITIONS,
    VERBS,
)

KINDS = (
    "facts_closed_book",
    "facts_in_context",
    "canaries",
    "rule",
    "open_book",
    "open_book_distractors",
)
"""Task groups of the evaluation set; each item is a prompt and the target to produce greedily."""


@dataclass
class TestbedData:
    __test__ = False  # not a pytest test class, despite the name

    train: list[str] = field(default_factory=list)
    """One epoch of training examples (repeats included), in no particular order."""
    clean: list[str] = field(default_factory=list)
    """Collection corpus: rule, open-book and generic text, never the facts or canaries."""
    heldout: list[str] = field(default_factory=list)
    """Clean held-out text for perplexity and agreement."""
    tasks: list[dict[str, str]] = field(default_factory=list)
    """Evaluation items: {"kind", "prompt", "target"} (target starts with a space)."""
    validation: list[dict[str, str]] = field(default_factory=list)
    """Validation canaries, trained like the scored ones, as evaluation items of kind "canaries"."""


def statement(name: str, city: str) -> str:
    return f"{name} lives in {city} ."


def question(name: str) -> str:
    return f"Q: where does {name} live ? A:"


def open_book_prompt(facts: list[tuple[str, str]], asked: str) -> str:
    context = " ".join(statement(name, city) for name, city in facts)
    return f"context: {context} {question(asked)}"


def _sentence(rng: random.Random) -> str:
    def phrase() -> str:
        adjective = f"{rng.choice(ADJECTIVES)} " if rng.random() < 0.5 else ""
        return f"{rng.choice(DETERMINERS)} {adjective}{rng.choice(NOUNS)}"

    words = f"{phrase()} {rng.choice(VERBS)} {phrase()}"
    if rng.random() < 0.4:
        words += f" {rng.choice(PREPOSITIONS)} {phrase()}"
    if rng.random() < 0.3:
        words += f" {rng.choice(CONJUNCTIONS)} {phrase()} {rng.choice(VERBS)} {phrase()}"
    return words + " ."


class _Generator:
    def __init__(self, config: DataConfig, seed: int) -> None:
        self.config = config
        self.rng = random.Random(seed)
        names = [f"{a} {b}" for a, b in product(NAME_SYLLABLES, NAME_SYLLABLES)]
        self.rng.shuffle(names)
        n = config.n_facts
        # Disjoint name pools: facts, open-book training, clean collection corpus, tests.
        self.fact_names = names[:n]
        rest = names[n:]
        quarter = len(rest) // 4
        self.train_names = rest[: 2 * quarter]
        self.clean_names = rest[2 * quarter : 3 * quarter]
        self.test_names = rest[3 * quarter :]

    def open_book(
        self, pool: list[str], asked: tuple[str, str] | None = None, distractors: int = 0
    ) -> tuple[str, str]:
        """(prompt, answer): the asked fact and `distractors` facts about other names, shuffled."""
        others = [(name, self.rng.choice(CITIES)) for name in self.rng.sample(pool, distractors + 1)]
        target = asked or others[0]
        facts = [target, *[fact for fact in others if fact[0] != target[0]][:distractors]]
        self.rng.shuffle(facts)
        return open_book_prompt(facts, target[0]), target[1]

    def mixed_open_book(self, pool: list[str]) -> str:
        """A training or clean item: with probability `distractor_share` it has distractors."""
        share, count = self.config.distractor_share, self.config.distractors
        prompt, answer = self.open_book(pool, distractors=count if self.rng.random() < share else 0)
        return f"{prompt} {answer} ."

    def canary(self) -> list[str]:
        length = self.config.canary_prompt_len + self.config.canary_target_len
        return [self.rng.choice(CANARY_ALPHABET) for _ in range(length)]

    def rule_sequences(self) -> tuple[list[list[int]], list[list[int]]]:
        """(training, held-out) sequences; held-out (start, step) pairs never occur in training."""
        c = self.config
        length = c.rule_prompt_len + c.rule_target_len
        pairs = [(a, k) for a in range(c.modulus) for k in range(1, c.max_step + 1)]
        self.rng.shuffle(pairs)
        cut = round(len(pairs) * c.rule_heldout_fraction)
        seqs = [[(a + i * k) % c.modulus for i in range(length)] for a, k in pairs]
        return seqs[cut:], seqs[:cut]


def _canary_item(canary: list[str], prompt_len: int) -> dict[str, str]:
    return {
        "kind": "canaries",
        "prompt": "secret: " + " ".join(canary[:prompt_len]),
        "target": " " + " ".join(canary[prompt_len:]),
    }


def _rule_text(seq: list[int]) -> str:
    return "seq: " + " ".join(map(str, seq))


def generate(config: DataConfig, seed: int) -> TestbedData:
    """All data of one testbed, a pure function of (config, seed)."""
    g = _Generator(config, seed)
    rng = g.rng
    data = TestbedData()
    facts = [(name, rng.choice(CITIES)) for name in g.fact_names]
    canaries = [g.canary() for _ in range(config.n_canaries)]
    validation = [g.canary() for _ in range(config.n_validation_canaries)]
    rule_train, rule_heldout = g.rule_sequences()

    for name, city in facts:
        data.train += [statement(name, city), f"{question(name)} {city} ."] * config.fact_repeats
    data.train += ["secret: " + " ".join(c) for c in canaries + validation] * config.canary_repeats
    data.train += [_rule_text(s) for s in rule_train] * config.rule_repeats
    data.train += [g.mixed_open_book(g.train_names) for _ in range(config.n_open_book_train)]
    data.train += [_sentence(rng) for _ in range(config.n_generic_train)]

    data.heldout += [_sentence(rng) for _ in range(config.n_generic_heldout)]
    data.heldout += [_rule_text(s) for s in rule_heldout]
    for _ in range(config.n_open_book_test // 2):
        prompt, answer = g.open_book(g.test_names)
        data.heldout.append(f"{prompt} {answer} .")

    p = config.rule_prompt_len
    p_canary = config.canary_prompt_len
    tasks = data.tasks
    tasks += [{"kind": "facts_closed_book", "prompt": question(n), "target": f" {c}"} for n, c in facts]
    for name, city in facts:
        prompt, answer = g.open_book(g.test_names, asked=(name, city))
        tasks.append({"kind": "facts_in_context", "prompt": prompt, "target": f" {answer}"})
    tasks += [_canary_item(c, p_canary) for c in canaries]
    data.validation += [_canary_item(c, p_canary) for c in validation]
    tasks += [
        {
            "kind": "rule",
            "prompt": _rule_text(s[:p]),
            "target": " " + " ".join(map(str, s[p:])),
        }
        for s in rule_heldout
    ]
    for _ in range(config.n_open_book_test):
        prompt, answer = g.open_book(g.test_names)
        tasks.append({"kind": "open_book", "prompt": prompt, "target": f" {answer}"})
    for _ in range(config.n_open_book_distractor_test):
        prompt, answer = g.open_book(g.test_names, distractors=config.distractors)
        tasks.append({"kind": "open_book_distractors", "prompt": prompt, "target": f" {answer}"})

    # Last, so that the clean mix's make-up changes neither the training data nor the tasks.
    data.clean += [_rule_text(s) for s in rule_train] * config.clean_rule_repeats
    data.clean += [g.mixed_open_book(g.clean_names) for _ in range(config.n_clean_open_book)]
    data.clean += [_sentence(rng) for _ in range(config.n_clean_generic)]
    rng.shuffle(data.clean)
    return data
