"""Lethe's own Prometheus metrics, labelled by variant (or index), on a registry of their own.

They never touch prometheus_client's global registry, where vLLM engines overwrite each other.
Label values are bounded: a variant label is only ever a served variant's name, or `UNROUTED` for
requests that named none (an unknown name must not add a series a client could grow forever).
"""

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lethe.service.engines.base import Chunk, EngineStats

# The variant label of requests that were refused before a variant was chosen.
UNROUTED = ""
EngineStatsSource = Callable[[], Iterable[tuple[str, EngineStats]]]


class EngineGauges(Collector):
    """`lethe_num_requests_running` / `_waiting` per variant, read from the engines at scrape time
    (the numbers autoscalers scale on)."""

    def __init__(self, source: EngineStatsSource) -> None:
        self._source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        running = GaugeMetricFamily(
            "lethe_num_requests_running", "Requests the engine is decoding now.", labels=["variant"]
        )
        waiting = GaugeMetricFamily(
            "lethe_num_requests_waiting", "Requests queued for a place in the batch.", labels=["variant"]
        )
        for name, stats in self._source():
            running.add_metric([name], stats.running)
            waiting.add_metric([name], stats.waiting)
        yield running
        yield waiting

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_TOKEN_LATENCY = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2.5)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "lethe_requests",
            "Finished requests by gRPC status code.",
            ["variant", "method", "code"],
            registry=r,
        )
        self.in_flight = Gauge("lethe_requests_in_flight", "Requests being served.", ["variant"], registry=r)
        self.ttft = Histogram(
            "lethe_time_to_first_token_seconds",
            "Time from request to first text.",
            ["variant"],
            buckets=_LATENCY,
            registry=r,
        )
        self.itl = Histogram(
            "lethe_inter_token_latency_seconds",
            "Time between streamed deltas.",
            ["variant"],
            buckets=_TOKEN_LATENCY,
            registry=r,
        )
        self.e2e = Histogram(
            "lethe_e2e_request_latency_seconds",
            "Time from request to its last token.",
            ["variant"],
            buckets=_LATENCY,
            registry=r,
        )
        self.queue = Histogram(
            "lethe_request_queue_time_seconds",
            "Time a request waited before its prefill.",
            ["variant"],
            buckets=_LATENCY,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "lethe_prompt_tokens", "Prompt tokens processed.", ["variant"], registry=r
        )
        self.generation_tokens = Counter(
            "lethe_generation_tokens", "Tokens generated.", ["variant"], registry=r
        )
        self.variants = Gauge(
            "lethe_variants", "Variants known to the server, by status.", ["status"], registry=r
        )
        self.variant_info = Gauge(
            "lethe_variant_status",
            "1 for the status each variant is in.",
            ["variant", "status"],
            registry=r,
        )

        self.retrieval_latency = Histogram(
            "lethe_retrieval_latency_seconds",
            "Time to embed a query and search an index (Search and retrieval-augmented Generate).",
            ["index"],
            buckets=_LATENCY,
            registry=r,
        )
        self.passages_returned = Counter(
            "lethe_retrieval_passages", "Passages returned by searches.", ["index"], registry=r
        )
        self.index_passages = Gauge(
            "lethe_index_passages", "Passages in the live snapshot of an index.", ["index"], registry=r
        )

    def watch_engines(self, source: EngineStatsSource) -> None:
        """Report running and waiting requests of the engines `source` lists at every scrape."""
        self.registry.register(EngineGauges(source))

    def record_finish(self, variant: str, chunk: Chunk, seconds: float) -> None:
        self.e2e.labels(variant).observe(seconds)
        if chunk.queue_seconds is not None:
            self.queue.labels(variant).observe(chunk.queue_seconds)
        self.prompt_tokens.labels(variant).inc(chunk.prompt_tokens)
        self.generation_tokens.labels(variant).inc(chunk.completion_tokens)

    def set_variant_status(self, statuses: dict[str, str]) -> None:
        """Refresh the variant gauges from {name: status} (the registry's current view)."""
        self.variant_info.clear()
        counts: dict[str, int] = {s: 0 for s in ("loading", "ready", "failed", "unloading")}
        for name, status in statuses.items():
            self.variant_info.labels(name, status).set(1)
            counts[status] = counts.get(status, 0) + 1
        for status, count in counts.items():
            self.variants.labels(status).set(count)


def start_metrics_server(metrics: Metrics, host: str, port: int):
    """Serve /metrics over HTTP; returns (server, port) so the caller can stop it."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server, server.server_address[1]
