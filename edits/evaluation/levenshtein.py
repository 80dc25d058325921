"""Token-level edit distance and the recitation scores built on it (Merullo et al. 2025, §3.3)."""

from collections.abc import Sequence


def levenshtein(a: Sequence[int], b: Sequence[int]) -> int:
    """Minimum number of insertions, deletions and substitutions turning `a` into `b`."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, token_a in enumerate(a, start=1):
        current = [i]
        for j, token_b in enumerate(b, start=1):
            current.append(
                min(
                    previous[j] + 1,
                    current[j - 1] + 1,
                    previous[j - 1] + (token_a != token_b),
                )
            )
        previous = current
    return previous[-1]


def similarity(generated: Sequence[int], target: Sequence[int]) -> float:
    """1 - d/L with L the target length: 1.0 is a verbatim recitation."""
    if not target:
        raise ValueError("the target must hold at least one token")
    return 1.0 - levenshtein(generated, target) / len(target)
