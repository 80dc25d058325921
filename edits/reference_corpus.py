"""The collection corpus the shipped Gemma recipe was chosen on: reference documentation that ships
with the software on a Debian machine, so every machine can rebuild it without a download.

- `python-reference.txt`: every topic of the Python language reference that `pydoc` serves
  (`pydoc_data.topics`, part of the standard library), in sorted topic order.
- `vim-user-manual.txt`: the Vim user manual (`usr_*.txt` of the newest Vim runtime: chapters and
  table of contents), when a Vim runtime is installed; without it, the Python reference alone.

Neither holds the fact corpus or the memorized-set sources, so factors collected on it do not
protect the very text the edit should remove.
"""

import glob
from pathlib import Path

from lethe.edits.atomic import atomic_directory

VIM_MANUAL_GLOBS = ("/usr/share/vim/vim*/doc/usr_*.txt",)


def python_reference() -> str:
    import pydoc_data.topics as topics

    return "\n\n".join(topics.topics[name] for name in sorted(topics.topics))


def vim_user_manual(patterns: tuple[str, ...] = VIM_MANUAL_GLOBS) -> str | None:
    """The chapters of the newest installed Vim runtime, in order; None if there is none."""
    for pattern in patterns:
        chapters = sorted(glob.glob(pattern))
        if chapters:
            newest = max(Path(chapter).parent for chapter in chapters)
            ordered = [c for c in chapters if Path(c).parent == newest]
            return "".join(Path(chapter).read_text(encoding="utf-8", errors="replace") for chapter in ordered)
    return None


def write_reference_corpus(out: Path, *, overwrite: bool = False) -> list[Path]:
    """Write the corpus directory atomically; returns the files written."""
    texts = {"python-reference.txt": python_reference(), "vim-user-manual.txt": vim_user_manual()}
    with atomic_directory(out, overwrite=overwrite) as staging:
        for name, text in texts.items():
            if text is not None:
                (staging / name).write_text(text, encoding="utf-8")
    return sorted(out.iterdir())
