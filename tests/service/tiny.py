"""Tiny offline models for service tests: a byte-level tokenizer and a small random Llama."""

import json
from pathlib import Path

import torch


def byte_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def build_tiny_llama(out: Path, *, seed: int = 0, max_positions: int = 256) -> Path:
    """Save a random LlamaForCausalLM (head dim 32, vLLM's minimum) and its tokenizer to `out`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = byte_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=max_positions,
        initializer_range=0.2,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    # Zero the logits of special tokens and of bytes that are not printable ASCII. The other logits
    # are random around zero, so greedy decoding never picks them: a run lasts exactly max_tokens
    # (tests of length and cancellation rely on it) and its text is plain ASCII, which every
    # detokenizer renders alike (vLLM holds back incomplete UTF-8 where transformers prints U+FFFD).
    with torch.no_grad():
        for token_id in range(len(tokenizer)):
            text = tokenizer.decode([token_id])
            if token_id < 3 or not (len(text) == 1 and text.isascii() and text.isprintable()):
                model.lm_head.weight[token_id] = 0
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_edited_variant(parent: Path, out: Path, *, scale: float = 0.0, seed: int = 1) -> Path:
    """An edited checkpoint of `parent` in the `lethe-edit/1` layout, changing one MLP matrix."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(parent, out)
    tensors = load_file(str(out / "model.safetensors"))
    name = "model.layers.1.mlp.down_proj.weight"
    generator = torch.Generator().manual_seed(seed)
    tensors[name] = tensors[name] * scale + torch.randn(tensors[name].shape, generator=generator) * (
        1 - scale
    )
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    manifest = {
        "format": "lethe-edit/1",
        "lethe_version": "0.1.0",
        "created": "2026-11-22T04:00:00Z",
        "parent": {"path": str(parent.resolve()), "fingerprint": "", "model_type": "llama"},
        "factors": {"path": "", "fingerprint": ""},
        "recipe": {"blocks": [1], "projections": ["down"], "keep_mass": 0.5, "overrides": {}},
        "matrices": [],
        "edited_tensors": [name],
    }
    (out / "lethe_edit.json").write_text(json.dumps(manifest, indent=2))
    return out
