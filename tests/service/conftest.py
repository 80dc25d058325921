"""Fixtures: tiny models on disk, a real Lethe gRPC server on 127.0.0.1:0, store databases."""

import asyncio
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service import postgres as pg
from tests.service.tiny import build_edited_variant, build_tiny_llama


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-base", max_positions=4096)


@pytest.fixture(scope="session")
def tiny_variant(tiny_model, tmp_path_factory) -> Path:
    return build_edited_variant(tiny_model, tmp_path_factory.mktemp("ckpt") / "tiny-pruned")


class ServerThread:
    """A `LetheServer` running on its own event loop in a background thread."""

    def __init__(self, settings, variants) -> None:
        from lethe.service.server import LetheServer

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = LetheServer(settings, variants)
        self.port = self.call(self.server.start())
        self.call(self.server.wait_ready(120))
        self.target = f"127.0.0.1:{self.port}"

    def call(self, coroutine, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self, grace: float = 0.0) -> None:
        self.call(self.server.stop(grace))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def settings_for(**overrides):
    from lethe.service.config import ServeSettings

    base = dict(
        host="127.0.0.1",
        port=0,
        metrics_host="127.0.0.1",
        metrics_port=0,
        max_tokens_limit=4000,
        default_max_tokens=8,
        grace_seconds=5,
        # Admin loads only from configured roots; the tests' checkpoints live in pytest's tmp dirs.
        variant_roots=[tempfile.gettempdir()],
        database_url=f"sqlite:///{tempfile.mkdtemp(prefix='lethe-store-')}/lethe.db",
    )
    base.update(overrides)
    return ServeSettings(**base)


@pytest.fixture
def start_server():
    """Factory: start_server(variants, **settings) -> ServerThread; all stopped at teardown."""
    started: list[ServerThread] = []

    def start(variants, **overrides) -> ServerThread:
        server = ServerThread(settings_for(**overrides), variants)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.server._server is not None:
            server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory) -> Iterator[ServerThread]:
    """One server with a base model and a pruned variant of it, shared by read-only tests."""
    from lethe.service.config import VariantSpec

    root = tmp_path_factory.mktemp("shared")
    base = build_tiny_llama(root / "base", max_positions=4096)
    pruned = build_edited_variant(base, root / "pruned")
    server = ServerThread(
        settings_for(),
        [VariantSpec(name="base", model=str(base)), VariantSpec(name="pruned", checkpoint=pruned)],
    )
    server.base_path, server.pruned_path = base, pruned
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[pg.PostgresServer]:
    """A throwaway PostgreSQL server, started on first use; without one installed the test FAILS."""
    problem = pg.missing()
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    with pg.postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database on each backend the store supports: a SQLite file, a PostgreSQL database."""
    if request.param == "sqlite":
        from lethe.service.store import default_database_url

        yield default_database_url(tmp_path / "lethe-home")
    else:
        with request.getfixturevalue("postgres").database() as url:
            yield url
