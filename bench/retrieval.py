"""Retrieval speed and quality: embedding throughput, search latency and recall@10 per index type.

Measured in one run, side by side:
  embedding   passages/s of the packaged all-MiniLM-L6-v2 on ~60-token passages (batch 32), and
              single-query embedding latency, at torch's default threads and at 1 thread
  search      for each size (default 10k and 100k vectors) and each index type (flat, hnsw, ivf):
              build seconds, single-query search latency p50/p99 (k=10, one query per call, as a
              server sees them) and recall@10 against the exact flat index
  end to end  KnowledgeIndex.search (embed + FAISS + SQLite) on a real embedded index
  generate    the added latency of retrieval in Generate: a real gRPC server on localhost serving
              a tiny Llama (or --rag-model) as `base` and `base+rag` (the demo policy over the
              demo fact index); the same greedy request with retrieval off and on, interleaved,
              p50 of each side by side, plus the Search RPC alone

The search part uses synthetic unit vectors (384-d, like the embedder's): embedding 100k passages
takes longer than a benchmark should on 2 shared cores. Two sets: "topical" (tight clusters; the
10th nearest neighbour has cosine ~0.5, like passages on one subject) at every size, and "hard"
(loose clusters, neighbours at cosine ~0.2, close to the worst case for approximate search) at
--hard-sizes. Recall is measured against exact search over the same vectors, so it describes the
index, not the embedder.

    python bench/retrieval.py [--sizes 10000 100000] [--hard-sizes 10000] [--queries 300]
                              [--parts embedding search end-to-end generate] [--rag-model M]

Results go to bench/out/retrieval.json; a run of some --parts keeps the other parts' last figures.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# This script shares its name with the package it measures: keep its own folder off the path.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.append(str(ROOT))  # tests.service.tiny builds the tiny model for the generate part

from lethe.retrieval.documents import Document  # noqa: E402
from lethe.retrieval.embedding import load_embedder  # noqa: E402
from lethe.retrieval.index import KnowledgeIndex  # noqa: E402
from lethe.retrieval.vectors import IndexConfig, VectorIndex  # noqa: E402

TOPICS = ["river", "castle", "volcano", "composer", "satellite", "enzyme", "harbour", "novel", "glacier"]


def passages(count: int) -> list[str]:
    rng = np.random.default_rng(7)
    words = "the of and in a to was is for on by with as from at that which its were into".split()
    out = []
    for n in range(count):
        topic = TOPICS[n % len(TOPICS)]
        filler = " ".join(rng.choice(words, 30))
        out.append(f"Passage {n} describes the {topic} number {n % 97}: {filler} {topic} history.")
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


PARTS = ("embedding", "search", "end-to-end", "generate")
SETS = {"topical": (500, 1.2), "hard": (1000, 2.0)}  # (clusters, noise per dimension)


def clustered(count: int, queries: int, clusters: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors scattered around random centres, and queries from the same distribution."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((clusters, 384)).astype(np.float32)

    def draw(n: int) -> np.ndarray:
        picked = centres[rng.integers(0, clusters, n)]
        points = (picked + noise * rng.standard_normal((n, 384))).astype(np.float32)
        return points / np.linalg.norm(points, axis=1, keepdims=True)

    return draw(count), draw(queries)


def bench_embedding(count: int) -> dict[str, float]:
    import torch

    embedder = load_embedder()
    texts = passages(count)
    embedder.embed(texts[:32])  # warm-up
    result: dict[str, float] = {
        "tokens_per_passage": float(np.mean([len(embedder.token_spans(t)) for t in texts]))
    }
    default_threads = torch.get_num_threads()
    for threads in sorted({default_threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        start = time.perf_counter()
        embedder.embed(texts, batch_size=32)
        result[f"passages_per_s_{threads}t"] = count / (time.perf_counter() - start)
        latencies = []
        for n in range(30):
            start = time.perf_counter()
            embedder.embed([f"what is the {TOPICS[n % len(TOPICS)]} called?"])
            latencies.append((time.perf_counter() - start) * 1000)
        result[f"query_embed_ms_p50_{threads}t"] = percentile(latencies, 50)
    torch.set_num_threads(default_threads)
    return result


def bench_search(size: int, query_count: int, data: str) -> list[dict[str, float | int | str]]:
    import faiss

    vectors, queries = clustered(size, query_count, *SETS[data])
    ids = np.arange(size, dtype=np.int64)
    rows: list[dict[str, float | int | str]] = []
    truth: np.ndarray | None = None
    for kind in ("flat", "hnsw", "ivf"):
        faiss.omp_set_num_threads(2)  # building may use both cores
        start = time.perf_counter()
        index = VectorIndex.create(384, IndexConfig(kind=kind), training=vectors)  # type: ignore[arg-type]
        index.add(ids, vectors)
        build_s = time.perf_counter() - start
        faiss.omp_set_num_threads(1)  # one query per call on one thread, as a server thread sees it
        latencies = []
        found = np.empty((query_count, 10), dtype=np.int64)
        for row in range(query_count):
            start = time.perf_counter()
            found[row] = index.search(queries[row : row + 1], 10)[1][0]
            latencies.append((time.perf_counter() - start) * 1000)
        if truth is None:
            truth = found.copy()
            tenth = float(np.mean(np.sum(queries * vectors[truth[:, -1]], axis=1)))
        recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))
        rows.append(
            {
                "size": size,
                "data": data,
                "cosine_10th_neighbour": tenth,
                "kind": kind,
                "params": _params(index),
                "build_s": build_s,
                "p50_ms": percentile(latencies, 50),
                "p99_ms": percentile(latencies, 99),
                "recall_at_10": recall,
            }
        )
        print(_row(rows[-1]), flush=True)
    return rows


def _params(index: VectorIndex) -> str:
    config = index.config
    if index.kind == "hnsw":
        return f"M={config.hnsw_m} efSearch={config.hnsw_ef_search}"
    if index.kind == "ivf":
        return f"nlist={index.nlist} nprobe={config.ivf_nprobe}"
    return "exact"


def _row(row: dict[str, float | int | str]) -> str:
    return (
        f"{row['size']:>7} {row['data']:<7} {row['kind']:<5} {row['params']:<24} "
        f"build {row['build_s']:7.2f} s  p50 {row['p50_ms']:7.3f} ms  p99 {row['p99_ms']:7.3f} ms  "
        f"recall@10 {row['recall_at_10']:.3f}  (10th neighbour cos {row['cosine_10th_neighbour']:.2f})"
    )


def bench_end_to_end(count: int, query_count: int) -> dict[str, float]:
    import torch

    embedder = load_embedder()
    documents = [Document(id=f"d{n}", text=text) for n, text in enumerate(passages(count))]
    with tempfile.TemporaryDirectory() as root:
        index = KnowledgeIndex.build(Path(root) / "idx", documents, embedder)
        torch.set_num_threads(1)
        latencies = []
        for n in range(query_count):
            start = time.perf_counter()
            index.search(f"tell me about the {TOPICS[n % len(TOPICS)]} number {n % 97}", 5)
            latencies.append((time.perf_counter() - start) * 1000)
    return {"passages": count, "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}


def _serve_in_thread(settings, variants, indexes):
    """A LetheServer on its own event loop in a daemon thread; returns (server, loop, port)."""
    import asyncio
    import threading

    from lethe.service.server import LetheServer

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    server = LetheServer(settings, variants, indexes)

    def call(coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(600)

    port = call(server.start())
    call(server.wait_ready(600))
    return server, call, port


def bench_generate(requests: int, max_tokens: int, model: str | None) -> dict[str, float | int | str]:
    """Generate with retrieval off and on for the same prompts through a real server."""
    import torch

    from lethe.client import LetheClient
    from lethe.retrieval.demo import facts_path, load_questions
    from lethe.retrieval.documents import load_documents
    from lethe.service.config import IndexSpec, ServeSettings, VariantSpec
    from lethe.service.startup import DEMO_POLICY

    torch.set_num_threads(1)
    embedder = load_embedder()
    questions = load_questions()
    label = model or "tiny-llama (2 layers, byte tokenizer)"
    with tempfile.TemporaryDirectory() as root:
        if model is None:
            from tests.service.tiny import build_tiny_llama

            model = str(build_tiny_llama(Path(root) / "tiny", max_positions=4096))
        KnowledgeIndex.build(Path(root) / "demo", load_documents(facts_path()), embedder)
        settings = ServeSettings(host="127.0.0.1", port=0, metrics_port=None, torch_threads=1)
        variants = [
            VariantSpec(name="base", model=model),
            VariantSpec(name="base+rag", alias_of="base", retrieval=DEMO_POLICY),
        ]
        server, call, port = _serve_in_thread(
            settings, variants, [IndexSpec(name="demo", path=Path(root) / "demo")]
        )
        timings: dict[str, list[float]] = {"off": [], "on": [], "search": []}
        tokens: dict[str, list[int]] = {"off": [], "on": []}
        try:
            with LetheClient(f"127.0.0.1:{port}", timeout=120) as client:
                for n in range(requests + 3):  # the first 3 rounds warm up
                    question = questions[n % len(questions)]
                    prompt = f"Question: {question.question}\nAnswer:"
                    order = ("off", "on") if n % 2 == 0 else ("on", "off")
                    for mode in order:
                        start = time.perf_counter()
                        reply = client.generate(
                            prompt,
                            variant="base" if mode == "off" else "base+rag",
                            max_tokens=max_tokens,
                            temperature=0,
                        )
                        elapsed = (time.perf_counter() - start) * 1000
                        if n >= 3:
                            timings[mode].append(elapsed)
                            tokens[mode].append(reply.prompt_tokens)
                    start = time.perf_counter()
                    client.search("demo", prompt, k=DEMO_POLICY.k)
                    if n >= 3:
                        timings["search"].append((time.perf_counter() - start) * 1000)
        finally:
            call(server.stop(0))
    added = [on - off for on, off in zip(timings["on"], timings["off"], strict=True)]
    return {
        "model": label,
        "requests": requests,
        "max_tokens": max_tokens,
        "k": DEMO_POLICY.k,
        "prompt_tokens_off": float(np.mean(tokens["off"])),
        "prompt_tokens_on": float(np.mean(tokens["on"])),
        "p50_off_ms": percentile(timings["off"], 50),
        "p50_on_ms": percentile(timings["on"], 50),
        "p50_added_ms": percentile(added, 50),
        "p50_search_rpc_ms": percentile(timings["search"], 50),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="Vectors per index.")
    parser.add_argument("--hard-sizes", type=int, nargs="*", default=[10_000], help="Sizes of the hard set.")
    parser.add_argument("--queries", type=int, default=300, help="Single queries timed per index.")
    parser.add_argument("--embed-passages", type=int, default=512, help="Passages embedded for throughput.")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="What to measure (default: everything).",
    )
    parser.add_argument("--generate-requests", type=int, default=60, help="Prompts timed each way.")
    parser.add_argument("--generate-tokens", type=int, default=8, help="max_tokens of each Generate.")
    parser.add_argument(
        "--rag-model", default=None, help="Model for the generate part (default: a tiny random Llama)."
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench/out/retrieval.json"), help="JSON results file."
    )
    args = parser.parse_args()

    import torch

    print(f"torch threads {torch.get_num_threads()}", flush=True)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if "embedding" in args.parts:
        results["embedding"] = bench_embedding(args.embed_passages)
        print("embedding:", json.dumps({k: round(v, 2) for k, v in results["embedding"].items()}), flush=True)
    if "search" in args.parts:
        search = [row for size in args.sizes for row in bench_search(size, args.queries, "topical")]
        search += [row for size in args.hard_sizes for row in bench_search(size, args.queries, "hard")]
        results["search"] = search
    if "end-to-end" in args.parts:
        results["end_to_end"] = bench_end_to_end(1000, 100)
        print(
            "end to end (1000 embedded passages, flat, embed+search+SQLite, 1 thread):",
            json.dumps(results["end_to_end"]),
        )
    if "generate" in args.parts:
        row = bench_generate(args.generate_requests, args.generate_tokens, args.rag_model)
        results["generate"] = row
        print(
            f"generate ({row['model']}, {row['requests']} prompts each way, max_tokens {row['max_tokens']}, "
            f"k {row['k']}): p50 off {row['p50_off_ms']:.1f} ms | on {row['p50_on_ms']:.1f} ms | "
            f"added {row['p50_added_ms']:.1f} ms (p50 of paired differences) | Search RPC alone "
            f"{row['p50_search_rpc_ms']:.1f} ms | prompt tokens {row['prompt_tokens_off']:.0f} -> "
            f"{row['prompt_tokens_on']:.0f}",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
