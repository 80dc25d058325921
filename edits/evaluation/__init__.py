"""Instruments that measure memorization and coherence of a model and its edited variants.

- `memorization`: greedy recitation of prompt/target pairs (strict, loose, similarity) plus the
  generation-free extraction strength and exact-memorization scores.
- `perplexity`: token-weighted perplexity of a text.
- `agreement`: nDCG@10 of a model's top-10 next tokens against a reference (parent) model's.

Every instrument returns an `EvalResult` (see `schema`); `summary` renders them as Markdown.
"""
