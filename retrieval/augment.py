"""Retrieval-augmented prompts: which passages go into the context, and how they are laid out.

The service (a variant's retrieval policy) and `lethe eval facts` both build prompts here, so the
restoration figures measure exactly the prompt the service sends.
"""

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lethe.retrieval.passages import Hit

DEFAULT_TEMPLATE = "{context}\n\n{prompt}"
DEFAULT_PASSAGE_FORMAT = "{title}: {text}"


class RetrievalPolicy(BaseModel):
    """How a variant augments prompts: search `index` for the prompt, put the top passages first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: str = Field(description="Name of a configured index (see `indexes` in the server config).")
    k: int = Field(default=3, gt=0, le=100, description="Passages to retrieve per request.")
    min_score: float = Field(
        default=0.0, ge=-1.0, le=1.0, description="Passages scoring below this cosine are left out."
    )
    template: str = Field(
        default=DEFAULT_TEMPLATE,
        description="Prompt layout; must contain {context} (the passages) and {prompt} (the request).",
    )
    passage_format: str = Field(
        default=DEFAULT_PASSAGE_FORMAT, description="Layout of one passage; may use {title} and {text}."
    )

    @field_validator("template")
    @classmethod
    def _template_has_slots(cls, value: str) -> str:
        missing = [slot for slot in ("{context}", "{prompt}") if slot not in value]
        if missing:
            raise ValueError(f"template must contain {' and '.join(missing)}")
        return value


def usable_hits(hits: Sequence[Hit], min_score: float) -> list[Hit]:
    """Hits at or above the score threshold, best first."""
    return [hit for hit in hits if hit.score >= min_score]


def format_passage(hit: Hit, passage_format: str = DEFAULT_PASSAGE_FORMAT) -> str:
    passage = hit.passage
    if passage.title:
        return passage_format.format(title=passage.title, text=passage.text)
    return passage.text


def augment_prompt(
    prompt: str,
    hits: Sequence[Hit],
    template: str = DEFAULT_TEMPLATE,
    passage_format: str = DEFAULT_PASSAGE_FORMAT,
) -> str:
    """The prompt with the passages laid out before it; with no passages, the prompt unchanged."""
    if not hits:
        return prompt
    context = "\n".join(format_passage(hit, passage_format) for hit in hits)
    return template.format(context=context, prompt=prompt)
