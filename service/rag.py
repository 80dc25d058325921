"""Retrieval-augmented generation for one request: which passages, and the prompt they make.

A variant's `RetrievalPolicy` names the index, k, a score threshold and the layout; a request can
turn retrieval off (or on, for a variant that has a policy) and change k. The layout is
`retrieval.augment`'s, so the service sends exactly the prompts that `lethe eval facts` measures.
"""

from collections.abc import Callable
from dataclasses import dataclass

from lethe.retrieval.augment import RetrievalPolicy, augment_prompt, usable_hits
from lethe.retrieval.passages import Hit
from lethe.service.errors import InvalidRequest
from lethe.service.indexes import IndexRegistry

# The query is the end of the prompt, where the question usually is. The embedder reads only the
# start of its input (all-MiniLM-L6-v2: 256 word pieces, ~1,000 characters of English), so a longer
# query would lose the question.
QUERY_CHARS = 1000


@dataclass(frozen=True)
class Augmented:
    """The prompt to generate from, and the passages in it (best first)."""

    prompt: str
    index: str = ""
    hits: tuple[Hit, ...] = ()


async def augment(
    prompt: str,
    variant: str,
    policy: RetrievalPolicy | None,
    indexes: IndexRegistry,
    *,
    wanted: bool | None,
    k: int,
    query: str = "",
    fits: Callable[[str], bool],
) -> Augmented:
    """Search the policy's index and lay the usable passages out before `prompt`.

    `wanted` is the request's switch (None: follow the policy), `k` its override (0: the
    policy's) and `query` the text to search for (empty: the end of the prompt). Passages that
    would push the prompt out of the context (`fits` is False) are dropped from the lowest-ranked
    up; the request is then served with fewer passages, or none.
    """
    if k < 0:
        raise InvalidRequest("retrieval_k", f"must be >= 0 (0 keeps the variant's k), got {k}")
    if policy is None:
        asked = [
            (f, v) for f, v in (("retrieval", wanted), ("retrieval_k", k), ("retrieval_query", query)) if v
        ]
        if asked:
            raise InvalidRequest(
                asked[0][0], f"variant {variant!r} has no retrieval policy; use a variant that has one"
            )
        return Augmented(prompt)
    if wanted is False:
        return Augmented(prompt)
    if query:
        field = "retrieval_query"
    else:
        field = "prompt"
        query = prompt[-min(QUERY_CHARS, indexes.get(policy.index).limits.max_query_chars) :]
    hits = await indexes.search(
        policy.index,
        query,
        k or policy.k,
        k_field="retrieval_k" if k else "retrieval.k",
        query_field=field,
    )
    kept = usable_hits(hits, policy.min_score)
    while kept:
        text = augment_prompt(prompt, kept, policy.template, policy.passage_format)
        if fits(text):
            return Augmented(text, policy.index, tuple(kept))
        kept = kept[:-1]
    return Augmented(prompt, policy.index)
