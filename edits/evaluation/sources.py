"""Known texts to mine a memorized set from, and where their sentences and lines end."""

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lethe.edits.errors import InvalidArgument, NotFound, problems

Kind = Literal["recitation", "rule"]
"""`recitation`: text the model can only produce from memory. `rule`: a sequence it can compute
(counting, months, times tables), reported apart because reproducing it proves no memorization."""

# A sentence or clause ends after . ! ? ; : (and any closing quotes or brackets) before white space.
_SENTENCE_END = re.compile(r"""[.!?;:]["'\u201d\u2019)\]]*(?=\s|$)""")


class SourceText(BaseModel):
    """One row of a sources file (JSONL)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    title: str = ""
    category: str = Field(min_length=1)
    kind: Kind = "recitation"
    text: str = Field(min_length=1)


def load_sources(path: Path) -> list[SourceText]:
    """Rows of `path`, one JSON object per line with unique ids; blank lines are skipped."""
    if not path.is_file():
        raise NotFound(f"sources file {path} does not exist")
    sources: list[SourceText] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            source = SourceText.model_validate_json(line)
        except ValidationError as error:
            where, message = problems(error)[0]
            raise InvalidArgument(f"{path}:{number}: {where or 'row'}: {message}") from None
        if not source.text.strip():
            raise InvalidArgument(f"{path}:{number}: text: holds only white space")
        if source.id in seen:
            raise InvalidArgument(f"{path}:{number}: id {source.id!r} appears twice")
        seen.add(source.id)
        sources.append(source)
    if not sources:
        raise InvalidArgument(f"{path} holds no texts")
    return sources


def boundaries(text: str) -> list[int]:
    """Character offsets where a sentence, a clause or a line of `text` ends, and where it ends.

    Quotes are cut so that their last tokens finish one of these units, as a remembered line does.
    """
    ends = {match.end() for match in _SENTENCE_END.finditer(text)}
    for line in re.finditer(r"[^\n]+", text):
        stripped = line.group().rstrip()
        if stripped:
            ends.add(line.start() + len(stripped))
    ends.add(len(text.rstrip()))
    return sorted(end for end in ends if end > 0)
