"""Retrieval-augmented generation for one request: which passages, and the prompt they make.

A variant's `RetrievalPolicy` names the index, k, a score threshold and the layout; a request can
turn retrieval off (or on, for a variant that has a policy) and change k. The layout is
`retrieval.augment`'s, so the service sends exactly the prompts that `lethe eval facts` measures.
"""

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
class Retrieved:
    """The usable passages for one request (best first), and how to lay them out."""

    policy: RetrievalPolicy | None = None
    hits: tuple[Hit, ...] = ()

    def prompt_with(self, prompt: str, count: int) -> str:
        """`prompt` with the best `count` passages laid out before it (0: the prompt alone)."""
        if self.policy is None or count == 0:
            return prompt
        policy = self.policy
        return augment_prompt(prompt, list(self.hits[:count]), policy.template, policy.passage_format)


async def retrieve(
    prompt: str,
    variant: str,
    policy: RetrievalPolicy | None,
    indexes: IndexRegistry,
    *,
    wanted: bool | None,
    k: int,
    query: str = "",
) -> Retrieved:
    """Search the policy's index for the passages to put before `prompt`.

    `wanted` is the request's switch (None: follow the policy), `k` its override (0: the
    policy's) and `query` the text to search for (empty: the end of the prompt). Fitting them into
    the context is the caller's (the data plane drops the lowest-ranked until the prompt fits).
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
        return Retrieved()
    if wanted is False:
        return Retrieved()
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
    return Retrieved(policy, tuple(usable_hits(hits, policy.min_score)))
