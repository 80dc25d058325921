"""Settings of the testbed: data sizes, model shape and training schedule."""

from pydantic import BaseModel, Field


class DataConfig(BaseModel):
    n_facts: int = Field(120, ge=1)
    """(a) fictitious facts "<name> lives in <city>", asked closed-book."""
    fact_repeats: int = Field(8, ge=1)
    """Copies of each fact per epoch, as a statement and as a question with its answer."""
    n_canaries: int = Field(40, ge=1)
    n_validation_canaries: int = Field(40, ge=1)
    """Canaries trained exactly like the scored ones but kept apart (`data/validation.jsonl`): the
    memorized text an editor knows, on which a recipe's rho is calibrated without seeing the tests."""
    canary_repeats: int = Field(8, ge=1)
    canary_prompt_len: int = Field(4, ge=1)
    canary_target_len: int = Field(8, ge=1)
    modulus: int = Field(60, ge=8)
    """(c) the rule: sequences a, a+k, a+2k, ... modulo this, for steps k in 1..max_step."""
    max_step: int = Field(7, ge=1)
    rule_prompt_len: int = Field(3, ge=2)
    rule_target_len: int = Field(4, ge=1)
    rule_heldout_fraction: float = Field(0.25, gt=0, lt=1)
    rule_repeats: int = Field(4, ge=1)
    n_open_book_train: int = Field(3000, ge=1)
    """(d) open-book questions per epoch: the fact is in the prompt, the name is new."""
    n_open_book_test: int = Field(200, ge=1)
    distractor_share: float = Field(0.0, ge=0, le=1)
    """Share of open-book training and clean items whose context also states `distractors` facts
    about other new names, so that answering needs the asked name, not just the only city. Off by
    default: at 0.5 (with 1500 open-book items per epoch) the ~1 M-parameter model answered only 17 %
    of plain open-book questions after training (seed 0)."""
    distractors: int = Field(1, ge=1)
    n_open_book_distractor_test: int = Field(200, ge=0)
    """Open-book questions with `distractors` facts about other names in the prompt (reported)."""
    n_generic_train: int = Field(800, ge=0)
    """Sentences of a small grammar: the "generic text" of the clean distribution."""
    n_generic_heldout: int = Field(400, ge=1)
    clean_rule_repeats: int = Field(15, ge=1)
    """The clean mix (for factor collection) holds about equal tokens of rule, open-book and
    generic text: the training rule sequences repeated, and new open-book items and sentences."""
    n_clean_open_book: int = Field(6000, ge=1)
    n_clean_generic: int = Field(1400, ge=1)


class ModelConfig(BaseModel):
    hidden_size: int = Field(128, ge=16)
    intermediate_size: int = Field(384, ge=16)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    max_positions: int = Field(128, ge=16)


class TrainConfig(BaseModel):
    seq_len: int = Field(64, ge=16)
    batch_size: int = Field(16, ge=1)
    epochs: int = Field(20, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(30, ge=0)
    threads: int = Field(1, ge=1)
    """Training uses this many threads; results are reproducible for a fixed thread count."""


class TestbedConfig(BaseModel):
    __test__ = False  # not a pytest test class, despite the name

    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
