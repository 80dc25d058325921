"""Serving benchmark: the gRPC service against the same engine in-process, and variant memory.

    python bench/serve.py [--model gemma3-270m] [--streams 4] [--max-tokens 64] [--rounds 2]

1. Throughput: N concurrent greedy streams through `lethe serve`'s server (a separate process,
   reached over gRPC on localhost) against N concurrent streams on a `TransformersEngine` called
   directly in a process of its own. Prints tokens/s, mean time to first token, and the ratio
   gRPC / in-process (the goal is >= 0.95). Rounds alternate the order; the best round counts.
2. Memory: resident set size of a process serving 1, 2 and 4 variants of one parent (the parent
   plus synthetic pruned checkpoints in the lethe-edit/1 layout), with the parent's unchanged
   tensors shared and, side by side, with every variant loaded in full.
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPTS = [
    "The history of the printing press begins",
    "In a small village by the sea, there lived",
    "The three laws of thermodynamics state that",
    "Once upon a time, in a kingdom far away,",
    "The recipe for a simple bread needs flour,",
    "Photosynthesis is the process by which plants",
    "The first computers were built in the 1940s",
    "When the storm finally passed, the sailors",
]


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# -- children ----------------------------------------------------------------------------------
async def _inproc(model: Path, streams: int, max_tokens: int, threads: int) -> dict:
    import torch

    from lethe.service.engines.base import GenerationRequest, Sampling
    from lethe.service.engines.transformers_engine import TransformersEngine, TransformersOptions

    torch.set_num_threads(threads)
    engine = TransformersEngine.from_pretrained(model, TransformersOptions(max_batch_size=streams))
    greedy = Sampling(max_tokens=max_tokens, temperature=0.0)

    async def one(i: int) -> tuple[float, int]:
        start, first, tokens = time.perf_counter(), None, 0
        async for chunk in engine.generate(GenerationRequest(str(i), PROMPTS[i % 8], greedy)):
            if chunk.text and first is None:
                first = time.perf_counter() - start
            tokens = chunk.completion_tokens or tokens
        return first or 0.0, tokens

    await one(0)  # warm-up
    start = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(streams)))
    wall = time.perf_counter() - start
    await engine.close()
    return {"wall": wall, "tokens": sum(t for _, t in results), "ttft": [f for f, _ in results]}


async def _server(model: Path, port_file: Path, streams: int, threads: int) -> None:
    from lethe.service.config import ServeSettings, VariantSpec
    from lethe.service.server import LetheServer

    settings = ServeSettings(
        host="127.0.0.1",
        port=0,
        metrics_port=None,
        max_batch_size=streams,
        max_tokens_limit=4096,
        torch_threads=threads,
    )
    server = LetheServer(settings, [VariantSpec(name="bench", model=str(model))])
    port = await server.start()
    await server.wait_ready()
    port_file.write_text(str(port))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(grace=1)


async def _memory(model: Path, checkpoints: list[Path], shared: bool) -> dict:
    import ctypes
    import gc

    from lethe.service.catalog import Catalog
    from lethe.service.config import ServeSettings, VariantSpec
    from lethe.service.variants import VariantManager

    before = rss_bytes()
    catalog = Catalog()
    manager = VariantManager(ServeSettings(share_parent_weights=shared, metrics_port=None), catalog)
    await manager.load(VariantSpec(name="base", model=str(model)))
    for i, checkpoint in enumerate(checkpoints):
        await manager.load(VariantSpec(name=f"pruned-{i}", checkpoint=checkpoint))
    failed = [v.error for v in catalog.list() if not v.serving]
    assert not failed, failed
    # Make every parameter page resident (safetensors maps files lazily; untouched embedding rows
    # would otherwise not count) and hand freed heap back to the OS before reading the RSS.
    for variant in catalog.list():
        for param in variant.engine.model.parameters():
            param.sum()
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    own = sum(v.memory().own_bytes for v in catalog.list())
    rss = rss_bytes()
    await manager.close()
    return {"rss": rss, "baseline_rss": before, "own_parameter_bytes": own}


# -- driver ------------------------------------------------------------------------------------
def child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


async def _grpc_round(target: str, streams: int, max_tokens: int) -> dict:
    import grpc

    from lethe.service.gen.lethe.v1 import inference_pb2, inference_pb2_grpc

    async with grpc.aio.insecure_channel(target) as channel:
        stub = inference_pb2_grpc.InferenceStub(channel)

        async def one(i: int) -> tuple[float, int]:
            request = inference_pb2.GenerateRequest(
                prompt=PROMPTS[i % 8],
                sampling=inference_pb2.SamplingParams(max_tokens=max_tokens, temperature=0.0),
            )
            start, first, tokens = time.perf_counter(), None, 0
            async for message in stub.GenerateStream(request):
                if message.text and first is None:
                    first = time.perf_counter() - start
                if message.finish_reason:
                    tokens = message.usage.completion_tokens
            return first or 0.0, tokens

        await one(0)  # warm-up
        start = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(streams)))
        wall = time.perf_counter() - start
    return {"wall": wall, "tokens": sum(t for _, t in results), "ttft": [f for f, _ in results]}


def grpc_round(model: Path, streams: int, max_tokens: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        server = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                "server",
                "--model",
                str(model),
                "--port-file",
                str(port_file),
                "--streams",
                str(streams),
                "--threads",
                str(threads),
            ],
            cwd=ROOT,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 600
            while not port_file.exists() and time.monotonic() < deadline:
                if server.poll() is not None:
                    raise SystemExit("the server process died")
                time.sleep(0.2)
            target = f"127.0.0.1:{port_file.read_text()}"
            return asyncio.run(_grpc_round(target, streams, max_tokens))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)


def summarise(result: dict) -> dict:
    return {
        "tokens_per_s": result["tokens"] / result["wall"],
        "ttft_s": sum(result["ttft"]) / len(result["ttft"]),
        "tokens": result["tokens"],
    }


def make_pruned_checkpoints(model: Path, out: Path, count: int) -> list[Path]:
    """Synthetic edited checkpoints: two MLP blocks' gate/up/down rows zeroed at random."""
    from datetime import UTC, datetime

    import torch
    from safetensors.torch import load_file, save_file

    from lethe.edits import __version__
    from lethe.edits.edit_manifest import EditManifest, FactorsRef, ParentRef
    from lethe.edits.recipe import Recipe

    model_type = json.loads((model / "config.json").read_text())["model_type"]

    tensors = load_file(str(model / "model.safetensors"))
    layers = sorted({int(k.split(".")[2]) for k in tensors if k.startswith("model.layers.")})
    blocks = layers[len(layers) // 2 : len(layers) // 2 + 2]
    edited = [f"model.layers.{b}.mlp.{p}_proj.weight" for b in blocks for p in ("gate", "up", "down")]
    made = []
    for i in range(count):
        target = out / f"pruned-{i}"
        target.mkdir(parents=True, exist_ok=True)
        for file in model.iterdir():
            if file.is_file() and file.suffix != ".safetensors":
                shutil.copy2(file, target / file.name)
        generator = torch.Generator().manual_seed(i)
        changed = dict(tensors)
        for name in edited:
            keep = (torch.rand(changed[name].shape[0], generator=generator) > 0.4).to(changed[name].dtype)
            changed[name] = changed[name] * keep[:, None]
        save_file(changed, str(target / "model.safetensors"), metadata={"format": "pt"})
        # Synthetic: rows zeroed at random, not a curvature edit (no factors, no mass achieved).
        EditManifest(
            format="lethe-edit/1",
            lethe_version=__version__,
            created=datetime.now(UTC).isoformat(),
            parent=ParentRef(path=str(model.resolve()), fingerprint="", model_type=model_type),
            factors=FactorsRef(path="", fingerprint=""),
            recipe=Recipe(blocks=blocks, keep_mass=0.6),
            matrices=[],
            edited_tensors=edited,
        ).write(target)
        made.append(target)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the engine, the same in both modes"
    )
    parser.add_argument("--variants", default="1,2,4")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--child", choices=["inproc", "server", "memory"])
    parser.add_argument("--port-file", type=Path)
    parser.add_argument("--checkpoints", default="")
    parser.add_argument("--shared", type=int, default=1)
    args = parser.parse_args()

    if args.child:
        model = Path(args.model)
        if args.child == "inproc":
            print(json.dumps(asyncio.run(_inproc(model, args.streams, args.max_tokens, args.threads))))
        elif args.child == "server":
            asyncio.run(_server(model, args.port_file, args.streams, args.threads))
        else:
            checkpoints = [Path(p) for p in args.checkpoints.split(",") if p]
            print(json.dumps(asyncio.run(_memory(model, checkpoints, bool(args.shared)))))
        return

    from lethe.edits.models import resolve_model

    model = Path(resolve_model(args.model))
    print(f"model: {args.model} ({model}); cores: {os.cpu_count()}; torch threads: {args.threads}")
    if not args.skip_throughput:
        print(f"\n{args.streams} concurrent greedy streams x {args.max_tokens} tokens")
        best: dict[str, dict] = {}
        every: dict[str, list[dict]] = {}
        for round_ in range(args.rounds):
            order = ["grpc", "inproc"] if round_ % 2 == 0 else ["inproc", "grpc"]
            for mode in order:
                if mode == "grpc":
                    result = summarise(grpc_round(model, args.streams, args.max_tokens, args.threads))
                else:
                    result = summarise(
                        child(
                            "--child",
                            "inproc",
                            "--model",
                            str(model),
                            "--streams",
                            str(args.streams),
                            "--max-tokens",
                            str(args.max_tokens),
                            "--threads",
                            str(args.threads),
                        )
                    )
                print(
                    f"  round {round_ + 1} {mode:7s} {result['tokens_per_s']:7.1f} tok/s  "
                    f"TTFT {result['ttft_s'] * 1000:7.1f} ms  ({result['tokens']} tokens)"
                )
                if mode not in best or result["tokens_per_s"] > best[mode]["tokens_per_s"]:
                    best[mode] = result
                every.setdefault(mode, []).append(result)
        ratio = best["grpc"]["tokens_per_s"] / best["inproc"]["tokens_per_s"]
        print(
            f"  best: gRPC {best['grpc']['tokens_per_s']:.1f} tok/s, in-process "
            f"{best['inproc']['tokens_per_s']:.1f} tok/s -> ratio {ratio:.3f} (goal >= 0.95); "
            f"TTFT gRPC {best['grpc']['ttft_s'] * 1000:.0f} ms vs in-process "
            f"{best['inproc']['ttft_s'] * 1000:.0f} ms"
        )
        median = {
            mode: statistics.median(r["tokens_per_s"] for r in results) for mode, results in every.items()
        }
        ttft = {mode: statistics.median(r["ttft_s"] for r in results) for mode, results in every.items()}
        print(
            f"  median: gRPC {median['grpc']:.1f} tok/s, in-process {median['inproc']:.1f} tok/s "
            f"-> ratio {median['grpc'] / median['inproc']:.3f}; TTFT gRPC {ttft['grpc'] * 1000:.0f} ms "
            f"vs in-process {ttft['inproc'] * 1000:.0f} ms"
        )
    if not args.skip_memory:
        counts = [int(c) for c in args.variants.split(",")]
        with tempfile.TemporaryDirectory(dir=os.environ.get("LETHE_BENCH_TMP")) as tmp:
            checkpoints = make_pruned_checkpoints(model, Path(tmp), max(counts) - 1)
            print("\nresident memory, variants of one parent (transformers engine, fp32)")
            print("  variants  shared RSS   full-load RSS   own params (shared)")
            for count in counts:
                listed = ",".join(str(c) for c in checkpoints[: count - 1])
                rows = {}
                for shared in (1, 0):
                    rows[shared] = child(
                        "--child",
                        "memory",
                        "--model",
                        str(model),
                        "--checkpoints",
                        listed,
                        "--shared",
                        str(shared),
                    )
                print(
                    f"  {count:8d}  {rows[1]['rss'] / 2**20:8.0f} MiB  "
                    f"{rows[0]['rss'] / 2**20:10.0f} MiB   "
                    f"{rows[1]['own_parameter_bytes'] / 2**20:8.0f} MiB"
                )


if __name__ == "__main__":
    main()
