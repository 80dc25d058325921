"""Read evaluation data: memorization sets (JSONL prompt/target pairs) and plain texts."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lethe.edits.errors import InvalidArgument, NotFound

_PROMPT_ID_KEYS = ("prompt_ids", "prefix_ids")
_TARGET_ID_KEYS = ("target_ids", "suffix_ids")


@dataclass(frozen=True)
class MemorizationItem:
    """A prompt and the continuation a memorizing model would recite, as token ids."""

    id: str
    group: str
    prompt_ids: list[int]
    target_ids: list[int]


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise NotFound(f"{what} {path} does not exist")
    return path


def _first(row: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((row[key] for key in keys if key in row), None)


def encode_pair(tokenizer: Any, prompt: str, target: str) -> tuple[list[int], list[int]]:
    """Token ids of prompt and target as the model sees them when the two are read as one text.

    Tokenizing the joined text and splitting at the prompt's length keeps merges at the seam the
    way the model would have seen them in training; if the prompt's ids are not a prefix of the
    joined ids, the two parts are tokenized separately.
    """
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    joined = tokenizer(prompt + target, add_special_tokens=True)["input_ids"]
    if joined[: len(prompt_ids)] == prompt_ids and len(joined) > len(prompt_ids):
        return prompt_ids, joined[len(prompt_ids) :]
    return prompt_ids, tokenizer(target, add_special_tokens=False)["input_ids"]


def load_memorization_set(path: Path, tokenizer: Any) -> list[MemorizationItem]:
    """Rows hold `prompt`/`target` text or `prompt_ids`/`target_ids` (alias `prefix_ids`/`suffix_ids`);
    optional `id` and `group` (or `kind`)."""
    items: list[MemorizationItem] = []
    lines = _existing(path, "memorization set").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InvalidArgument(f"{path}:{number}: not JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise InvalidArgument(f"{path}:{number}: expected a JSON object per line")
        prompt_ids, target_ids = _first(row, _PROMPT_ID_KEYS), _first(row, _TARGET_ID_KEYS)
        if prompt_ids is None and "prompt" in row and "target" in row:
            prompt_ids, target_ids = encode_pair(tokenizer, str(row["prompt"]), str(row["target"]))
        if not prompt_ids or not target_ids:
            raise InvalidArgument(
                f"{path}:{number}: give non-empty `prompt` and `target` text, or "
                "`prompt_ids` and `target_ids`"
            )
        group = str(row.get("group", row.get("kind", "all")))
        items.append(
            MemorizationItem(
                str(row.get("id", number)), group, list(map(int, prompt_ids)), list(map(int, target_ids))
            )
        )
    if not items:
        raise InvalidArgument(f"{path} holds no items")
    return items


def load_texts(path: Path) -> list[str]:
    """Documents of a `.jsonl` file (its `text` fields) or a plain text file (one document)."""
    content = _existing(path, "text file").read_text(encoding="utf-8")
    if path.suffix != ".jsonl":
        texts = [content]
    else:
        texts = []
        for number, line in enumerate(content.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                texts.append(str(json.loads(line)["text"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InvalidArgument(
                    f"{path}:{number}: expected a JSON object with a `text` field"
                ) from None
    if not any(text.strip() for text in texts):
        raise InvalidArgument(f"{path} holds no text")
    return texts
