"""The demo fact corpus shipped with Lethe and its closed-book question set.

`facts.jsonl` holds short passages about real entities at three popularity levels (famous, mid,
obscure) plus distractor passages about other entities; `questions.jsonl` asks one question per
fact passage, answerable from that passage alone.
"""

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lethe.edits.errors import explain
from lethe.retrieval.documents import read_jsonl
from lethe.retrieval.embedding import Embedder
from lethe.retrieval.errors import InvalidArgument
from lethe.retrieval.index import KnowledgeIndex, Progress
from lethe.retrieval.snapshots import SnapshotDir

Popularity = Literal["famous", "mid", "obscure"]


class Question(BaseModel):
    """A closed-book question with its answer, accepted aliases and the passage that answers it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    popularity: Popularity
    doc_id: str = Field(min_length=1, description="The document whose passage answers it.")

    @property
    def accepted(self) -> list[str]:
        return [self.answer, *self.aliases]


def facts_path() -> Path:
    return Path(str(resources.files("lethe.retrieval") / "data" / "facts.jsonl"))


def questions_path() -> Path:
    return Path(str(resources.files("lethe.retrieval") / "data" / "questions.jsonl"))


def load_questions(path: Path | None = None) -> list[Question]:
    """Read a question set (`id`, `question`, `answer`, `aliases`, `popularity`, `doc_id`)."""
    path = path or questions_path()
    questions = []
    for where, raw in read_jsonl(path):
        try:
            questions.append(Question.model_validate(raw))
        except ValidationError as error:
            fields = explain(error, top="question")
            raise InvalidArgument(f"{where}: malformed question: {fields}") from None
    if not questions:
        raise InvalidArgument(f"{path}: no questions found")
    return questions


def open_or_build_demo_index(
    root: Path, embedder: Embedder, *, progress: Progress | None = None
) -> KnowledgeIndex:
    """Open the demo index at `root`, building it from the shipped corpus the first time."""
    from lethe.retrieval.documents import load_documents

    if SnapshotDir(root).exists():
        return KnowledgeIndex.open(root, embedder)
    return KnowledgeIndex.build(root, load_documents(facts_path()), embedder, progress=progress)
