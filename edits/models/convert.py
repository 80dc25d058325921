"""GGUF -> an ordinary Hugging Face checkpoint directory (fp32 safetensors)."""

from dataclasses import dataclass
from pathlib import Path

from lethe.edits.models.report import say


@dataclass(frozen=True)
class Converted:
    model_type: str
    architectures: tuple[str, ...]
    parameters: int
    add_bos_token: bool


def special_token_flags(gguf: Path) -> dict[str, bool]:
    """The GGUF's `tokenizer.ggml.add_{bos,eos}_token` flags, as tokenizer keyword arguments.

    transformers' GGUF tokenizer conversion ignores them, so Gemma's tokenizer would not prepend
    `<bos>`, and Gemma without `<bos>` produces garbage.
    """
    from gguf import GGUFReader

    fields = GGUFReader(gguf).fields
    flags = {}
    for key in ("add_bos_token", "add_eos_token"):
        field = fields.get(f"tokenizer.ggml.{key}")
        if field is not None:
            flags[key] = bool(field.contents())
    return flags


def convert_gguf(gguf: Path, out_dir: Path) -> Converted:
    """Dequantize `gguf` with transformers and save config, tokenizer and weights in `out_dir`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say(f"converting {gguf.name} (dequantizing to float32)")
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(
        gguf.parent, gguf_file=gguf.name, **special_token_flags(gguf)
    )
    # The weights are plain fp32 tensors now; transformers refuses to save a model that still
    # carries its GGUF quantizer state ("not serializable").
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    say(f"saving safetensors, config and tokenizer to {out_dir}")
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    if not (out_dir / "generation_config.json").exists():
        model.generation_config.save_pretrained(out_dir)
    return Converted(
        model_type=model.config.model_type,
        architectures=tuple(model.config.architectures or ()),
        parameters=sum(p.numel() for p in model.parameters()),
        # Read back from the saved tokenizer: v5 keeps the flag only in its post-processor.
        add_bos_token=_adds_bos(out_dir),
    )


def _adds_bos(model_dir: Path) -> bool:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids = tokenizer("a").input_ids
    return bool(ids) and ids[0] == tokenizer.bos_token_id
