"""vLLM's per-request stats without vLLM's global Prometheus metrics.

With stats on, vLLM fills `RequestOutput.metrics` (queue, schedule and token timestamps), but its
`StatLoggerManager` then adds a `PrometheusStatLogger` on prometheus_client's global registry,
where several engines in one process overwrite each other. It adds that logger only when no
given logger is already one, so `SilentPrometheusLogger` passes that check and records nothing.
Imports vLLM: load this module only when a vLLM engine starts.
"""

from typing import Any

from vllm.config import VllmConfig
from vllm.v1.metrics.loggers import PrometheusStatLogger
from vllm.v1.metrics.stats import RequestStateStats


class SilentPrometheusLogger(PrometheusStatLogger):
    """Stands in for vLLM's Prometheus logger: registers no metric, drops every record."""

    def __init__(self, vllm_config: VllmConfig, engine_indexes: list[int] | None = None) -> None:
        # Deliberately not calling super().__init__: that (re)registers the global `vllm:` metrics.
        self.vllm_config = vllm_config
        self.engine_indexes = engine_indexes or [0]

    def record(self, *args: Any, **kwargs: Any) -> None:
        pass

    def record_admission_rejection(self, reason: str) -> None:
        pass

    def record_sleep_state(self, sleep: int = 0, level: int = 0) -> None:
        pass

    def log_engine_initialized(self) -> None:
        pass

    def log(self) -> None:
        pass


def queue_seconds(stats: RequestStateStats | None) -> float | None:
    """Seconds from entering the engine core's queue to first being scheduled (None if unknown).

    Both timestamps come from the engine core's monotonic clock; preemptions do not reset them.
    """
    if stats is None or stats.queued_ts <= 0 or stats.scheduled_ts < stats.queued_ts:
        return None
    return stats.scheduled_ts - stats.queued_ts
