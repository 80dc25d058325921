"""`lethe serve`: run the gRPC service, or (`--check-config`) only check what it would serve."""

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from lethe.service.config import IndexSpec, ServeSettings, VariantSpec

app = typer.Typer(add_completion=False)


@app.command("serve")
def serve(
    config: Path | None = typer.Option(None, "--config", help="YAML configuration file."),
    model: str | None = typer.Option(
        None, "--model", help="Model to serve when the config declares no variants."
    ),
    variant: list[str] = typer.Option(
        [], "--variant", help="NAME=CHECKPOINT: also serve this edited checkpoint (repeatable)."
    ),
    engine: str | None = typer.Option(None, "--engine", help="transformers (default) or vllm."),
    host: str | None = typer.Option(None, "--host", help="Address to bind (default 0.0.0.0)."),
    port: int | None = typer.Option(None, "--port", help="gRPC port (default 50051; 0 = any)."),
    metrics_port: int | None = typer.Option(None, "--metrics-port", help="Prometheus port (default 9090)."),
    check_config: bool = typer.Option(
        False,
        "--check-config",
        help="Check the configuration (file, LETHE_* variables, flags) and print the variants and "
        "indexes it would serve, then exit; loads no model and binds no port.",
    ),
) -> None:
    """Serve the default model and its pruned variants (or the configured ones) over gRPC; with no
    configuration also the demo fact index and a NAME+rag variant of each pruned one."""
    import logging

    from lethe.service.config import load_settings
    from lethe.service.startup import (
        check_references,
        demo_rag_variants,
        initial_indexes,
        initial_variants,
        parse_variant_flag,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(
        config, model=model, engine=engine, host=host, port=port, metrics_port=metrics_port
    )
    variants = initial_variants(settings, [parse_variant_flag(v) for v in variant])
    variants += demo_rag_variants(settings, variants)
    indexes = initial_indexes(settings)
    check_references(settings, variants, indexes)
    if check_config:
        settings.check_secrets()
        for line in summary(settings, variants, indexes):
            typer.echo(line)
        return

    import asyncio

    from lethe.service.server import serve as run

    asyncio.run(run(settings, variants, indexes))


def summary(
    settings: "ServeSettings", variants: list["VariantSpec"], indexes: list["IndexSpec"]
) -> list[str]:
    """One line per variant and per index, then where the server would listen."""
    default = settings.default_variant or (variants[0].name if variants else None)
    lines = [_variant_line(spec, settings.engine, spec.name == default) for spec in variants]
    lines += [_index_line(index) for index in indexes]
    metrics = (
        "off" if settings.metrics_port is None else f"on {settings.metrics_bind_host}:{settings.metrics_port}"
    )
    lines.append(
        f"ok: {_count(len(variants), 'variant')}, {_count(len(indexes), 'index', 'indexes')}; "
        f"gRPC on {settings.host}:{settings.port}, metrics {metrics}"
    )
    return lines


def _variant_line(spec: "VariantSpec", engine: str, is_default: bool) -> str:
    if spec.alias_of is not None:
        source = f"alias of {spec.alias_of}"
    else:
        where = f"checkpoint {spec.checkpoint}" if spec.checkpoint is not None else f"model {spec.model}"
        source = f"{where}, {spec.engine or engine} engine"
    if spec.retrieval is not None:
        source += f", retrieval from {spec.retrieval.index} (k={spec.retrieval.k})"
    return f"variant {spec.name}: {source}{' (default)' if is_default else ''}"


def _index_line(index: "IndexSpec") -> str:
    embedder = f", embedder {index.embedder}" if index.embedder else ""
    demo = " (the demo facts, built there on first start)" if index.demo else ""
    return f"index {index.name}: {index.path}{embedder}{demo}"


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"
