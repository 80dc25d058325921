"""Retrieval-augmented prompts: which passages go into the context, and how they are laid out.

The service (a variant's retrieval policy) and `lethe eval facts` both build prompts here, so the
restoration figures measure exactly the prompt the service sends.
"""

import string
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lethe.retrieval.passages import Hit

DEFAULT_TEMPLATE = "{context}\n\n{prompt}"
DEFAULT_PASSAGE_FORMAT = "{title}: {text}"

TEMPLATE_FIELDS = ("context", "prompt")
"""The fields `augment_prompt` fills in a template; a template must use both."""
PASSAGE_FIELDS = ("title", "text")
"""The fields `format_passage` fills in a passage format; it may use either."""


def check_layout(value: str, allowed: Sequence[str], required: Sequence[str] = ()) -> str:
    """`value` if `str.format` can fill it with exactly the named fields `allowed`, else ValueError.

    Only plain `{name}` fields (and `{{`/`}}` for literal braces) are accepted: a positional field
    (`{}`, `{0}`), an attribute or index (`{context.x}`, `{prompt[0]}`), a conversion (`!r`) or a
    format spec (`:>{x}`, or `:>99999999`, which would pad every prompt to that size) is refused
    here rather than when every request through the variant fails.
    """
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as error:
        raise ValueError(
            f"not a valid format string ({error}); write a literal brace as {{{{ or }}}}"
        ) from None
    names = ", ".join("{" + name + "}" for name in allowed)
    used: set[str] = set()
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in allowed:
            shown = "{" + name + "}" if len(name) <= 40 else "{" + name[:40] + "...}"
            raise ValueError(f"unknown field {shown}; the fields are {names}")
        if conversion is not None or spec:
            raise ValueError(f"{{{name}}} must be written plainly, without a conversion or format spec")
        used.add(name)
    missing = [name for name in required if name not in used]
    if missing:
        raise ValueError(f"must contain {' and '.join('{' + name + '}' for name in missing)}")
    try:  # the checks above leave nothing that can fail; this keeps them honest
        value.format(**{name: f"sample {name}" for name in allowed})
    except (ValueError, KeyError, IndexError, AttributeError) as error:
        raise ValueError(f"cannot be filled in ({type(error).__name__}: {error})") from None
    return value


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
        description="Prompt layout; must contain {context} (the passages) and {prompt} (the request), "
        "and no other fields.",
    )
    passage_format: str = Field(
        default=DEFAULT_PASSAGE_FORMAT,
        description="Layout of one passage that has a title; may use {title} and {text}, no other fields.",
    )

    @field_validator("template")
    @classmethod
    def _template_fills(cls, value: str) -> str:
        return check_layout(value, TEMPLATE_FIELDS, required=TEMPLATE_FIELDS)

    @field_validator("passage_format")
    @classmethod
    def _passage_format_fills(cls, value: str) -> str:
        return check_layout(value, PASSAGE_FIELDS)


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
