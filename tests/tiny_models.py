"""Tiny Hugging Face causal LMs and tokenizers built offline, for tests of every package."""

import random
from pathlib import Path

import torch

WORDS = (
    "the a one two three four five six seven eight nine ten cat dog bird fish tree river stone city "
    "king queen red blue green runs sleeps eats sees finds lives in on under over and or but is was "
    "quick slow big small old new north south east west sun moon star rain snow wind fire water"
).split()
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]


def build_tokenizer(words: list[str] = WORDS) -> object:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(SPECIALS + list(dict.fromkeys(words)))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def build_model(family: str, vocab_size: int, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised model of `family` (llama, gpt2, gpt_neox), a few thousand parameters."""
    from transformers import AutoModelForCausalLM, GPT2Config, GPTNeoXConfig, LlamaConfig

    torch.manual_seed(seed)
    common = {"vocab_size": vocab_size, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
    if family == "llama":
        config = LlamaConfig(
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            tie_word_embeddings=False,
            **common,
        )
    elif family == "gpt2":
        config = GPT2Config(n_embd=32, n_layer=3, n_head=4, n_positions=128, **common)
    elif family == "gpt_neox":
        config = GPTNeoXConfig(
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=3,
            num_attention_heads=4,
            max_position_embeddings=128,
            **common,
        )
    else:
        raise ValueError(family)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def save_tiny_model(directory: Path, family: str = "llama", seed: int = 0) -> Path:
    tokenizer = build_tokenizer()
    model = build_model(family, len(tokenizer), seed)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_corpus(path: Path, sentences: int = 200, seed: int = 0) -> Path:
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))) for _ in range(sentences)]
    path.write_text("\n".join(lines) + "\n")
    return path
