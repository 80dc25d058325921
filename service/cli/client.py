"""`lethe generate` and `lethe variants`: command-line clients of a running server."""

import os
import sys
from pathlib import Path

import typer

app = typer.Typer(add_completion=False)

TARGET = typer.Option(None, "--target", help="Server address (default $LETHE_TARGET or localhost:50051).")
TOKEN_FILE = typer.Option(None, "--token-file", help="File holding the bearer token (default $LETHE_TOKEN).")
CA = typer.Option(None, "--tls-ca", help="CA certificate to verify the server's TLS certificate.")


def _client(target: str | None, token_file: Path | None, tls_ca: Path | None, timeout=None):
    from lethe.client import LetheClient

    token = token_file.read_text().strip() if token_file else os.environ.get("LETHE_TOKEN")
    target = target or os.environ.get("LETHE_TARGET", "localhost:50051")
    return LetheClient(target, token=token, root_cert=tls_ca, timeout=timeout)


def _fail(error) -> None:
    typer.echo(f"error: {error.code().name}: {error.details()}", err=True)
    raise typer.Exit(1)


@app.command("generate")
def generate(
    prompt: str = typer.Argument(..., help="The prompt."),
    variant: str = typer.Option("", "--variant", help="Variant to run (default: the server's)."),
    max_tokens: int = typer.Option(0, "--max-tokens", help="0 = the server's default."),
    temperature: float | None = typer.Option(None, "--temperature", help="0 = greedy."),
    top_p: float | None = typer.Option(None, "--top-p"),
    top_k: int = typer.Option(0, "--top-k"),
    seed: int | None = typer.Option(None, "--seed"),
    stop: list[str] = typer.Option([], "--stop", help="Stop string (repeatable)."),
    stream: bool = typer.Option(True, "--stream/--no-stream", help="Print text as it comes."),
    retrieval: bool | None = typer.Option(
        None, "--retrieval/--no-retrieval", help="Retrieval-augmented or not (default: the variant's policy)."
    ),
    retrieval_k: int = typer.Option(0, "--retrieval-k", help="Passages to retrieve (0: the variant's k)."),
    retrieval_query: str = typer.Option(
        "", "--retrieval-query", help="Text to search for (default: the end of the prompt)."
    ),
    timeout: float | None = typer.Option(None, "--timeout", help="Deadline in seconds."),
    target: str | None = TARGET,
    token_file: Path | None = TOKEN_FILE,
    tls_ca: Path | None = CA,
) -> None:
    """Generate a completion; the answering variant, token usage and passages used go to stderr."""
    import grpc

    params = dict(
        variant=variant,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        seed=seed,
        stop=stop,
        retrieval=retrieval,
        retrieval_k=retrieval_k,
        retrieval_query=retrieval_query,
    )
    with _client(target, token_file, tls_ca, timeout) as client:
        try:
            if stream:
                last = None
                for message in client.stream(prompt, **params):
                    sys.stdout.write(message.text)
                    sys.stdout.flush()
                    last = message
                sys.stdout.write("\n")
                if last is not None:
                    typer.echo(
                        f"[{last.variant}] finish={last.finish_reason} "
                        f"prompt_tokens={last.usage.prompt_tokens} "
                        f"completion_tokens={last.usage.completion_tokens}",
                        err=True,
                    )
                    _echo_passages(last.passages)
            else:
                reply = client.generate(prompt, **params)
                typer.echo(reply.text)
                typer.echo(
                    f"[{reply.variant}] finish={reply.finish_reason} "
                    f"prompt_tokens={reply.prompt_tokens} "
                    f"completion_tokens={reply.completion_tokens}",
                    err=True,
                )
                _echo_passages(reply.passages)
        except grpc.RpcError as error:
            _fail(error)


def _echo_passages(passages) -> None:
    if passages:
        used = ", ".join(f"{p.id} ({p.score:.3f})" for p in passages)
        typer.echo(f"[retrieval] {passages[0].index}: {used}", err=True)


@app.command("variants")
def variants(
    target: str | None = TARGET,
    token_file: Path | None = TOKEN_FILE,
    tls_ca: Path | None = CA,
) -> None:
    """List the server's variants with their status."""
    import grpc

    with _client(target, token_file, tls_ca, timeout=30) as client:
        try:
            listed = client.list_variants()
        except grpc.RpcError as error:
            _fail(error)
    rows = [("NAME", "STATUS", "ENGINE", "PARENT", "DEFAULT", "RETRIEVAL")]
    rows += [
        (
            v.name,
            v.status,
            v.engine,
            v.parent or "-",
            "*" if v.is_default else "-",
            f"{v.retrieval.index} k={v.retrieval.k}" if v.retrieval is not None else "-",
        )
        for v in listed
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
