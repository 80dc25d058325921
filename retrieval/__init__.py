"""Retrieval: a FAISS + SQLite knowledge index that gives facts back through the context.

Plain functions and classes over domain types (no gRPC here):

- `retrieval.documents`: `Document`, `load_documents(path)`, `parse_documents(records)`
- `retrieval.embedding`: `Embedder` protocol, `load_embedder(spec)` (packaged all-MiniLM-L6-v2)
- `retrieval.index`: `KnowledgeIndex.build/open`, `.search`, `.search_many`, `.add_documents`,
  `.delete_documents`, `.info`, `.refresh`
- `retrieval.limits`: `SearchLimits` (per index: k, queries, filters) and `DocumentLimits`;
  `retrieval.filters`: metadata filters checked against them; `retrieval.inputs`: the checks on
  untrusted text and JSON (NUL, lone surrogates, nesting, size) that both use
- `retrieval.vectors`: `IndexConfig` (flat / hnsw / ivf / auto) and the FAISS wrapper
- `retrieval.demo`: the shipped fact corpus and question set; `retrieval.evaluation`: recall@k
- `retrieval.index_admin`: what `lethe index` does (build, add, delete, search, describe a directory)
- `retrieval.facts_eval`: fact QA scoring; `retrieval.facts_run`: `lethe eval facts` end to end
- `retrieval.errors`: retrieval's errors in the shared hierarchy (`lethe.edits.errors.LetheError`)

Heavy dependencies (torch, transformers, faiss) are imported only when used.
"""
