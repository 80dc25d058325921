"""Where each architecture keeps its transformer blocks and MLP projections.

One table, keyed by the `model_type` of a Hugging Face config, replaces any dispatch on model names.
Projections use canonical names: `gate`, `up`, `down` (two-matrix MLPs have only `up` and `down`).
"""

from dataclasses import dataclass
from typing import Literal

from lethe.edits.errors import UnsupportedArchitecture

Projection = Literal["gate", "up", "down"]
PROJECTIONS: tuple[Projection, ...] = ("gate", "up", "down")


@dataclass(frozen=True)
class MlpLayout:
    family: str
    blocks_path: str
    """Dotted path from the causal-LM module to the list of transformer blocks."""
    projections: dict[str, str]
    """Canonical projection name -> dotted path inside one block."""
    transposed: bool = False
    """True where the weight is stored (d_in, d_out), as GPT-2's Conv1D does."""
    input_twins: tuple[tuple[str, str], ...] = ()
    """(projection, twin): the projection reads exactly the twin's input, so their A is one matrix."""

    def module_name(self, block: int, projection: str) -> str:
        return f"{self.blocks_path}.{block}.{self.projections[projection]}"

    def weight_name(self, block: int, projection: str) -> str:
        return f"{self.module_name(block, projection)}.weight"


_GATED = {"gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}


def _gated(family: str) -> MlpLayout:
    """down(act(gate(x)) * up(x)): gate and up read the same x."""
    return MlpLayout(family, "model.layers", _GATED, input_twins=(("up", "gate"),))


LAYOUTS: dict[str, MlpLayout] = {
    "llama": _gated("llama"),
    "mistral": _gated("mistral"),
    "qwen2": _gated("qwen2"),
    "qwen3": _gated("qwen3"),
    "olmo": _gated("olmo"),
    "olmo2": _gated("olmo2"),
    "gemma": _gated("gemma"),
    "gemma2": _gated("gemma2"),
    "gemma3_text": _gated("gemma3"),
    "gpt_neox": MlpLayout(
        "gpt_neox", "gpt_neox.layers", {"up": "mlp.dense_h_to_4h", "down": "mlp.dense_4h_to_h"}
    ),
    "gpt2": MlpLayout("gpt2", "transformer.h", {"up": "mlp.c_fc", "down": "mlp.c_proj"}, transposed=True),
}


def supported_families() -> list[str]:
    return sorted({layout.family for layout in LAYOUTS.values()})


def layout_for(model_type: str) -> MlpLayout:
    """The MLP layout of a `model_type`, or an error that names what is supported."""
    try:
        return LAYOUTS[model_type]
    except KeyError:
        raise UnsupportedArchitecture(
            f"model_type {model_type!r} is not supported for editing; supported families: "
            f"{', '.join(supported_families())} (model_types: {', '.join(sorted(LAYOUTS))})"
        ) from None
