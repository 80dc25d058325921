"""`lethe serve`: run the gRPC service."""

from pathlib import Path

import typer

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
) -> None:
    """Serve the default model and its pruned variants (or the configured ones) over gRPC; with no
    configuration also the demo fact index and a NAME+rag variant of each pruned one."""
    import asyncio
    import logging

    from lethe.service.config import load_settings
    from lethe.service.server import serve as run
    from lethe.service.startup import demo_rag_variants, initial_indexes, initial_variants, parse_variant_flag

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(
        config, model=model, engine=engine, host=host, port=port, metrics_port=metrics_port
    )
    variants = initial_variants(settings, [parse_variant_flag(v) for v in variant])
    variants += demo_rag_variants(settings, variants)
    asyncio.run(run(settings, variants, initial_indexes(settings)))
