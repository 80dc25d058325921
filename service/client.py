"""A Python client for Lethe's gRPC API, for application code and the `lethe` CLI.

with LetheClient("localhost:50051") as client:
    print(client.generate("The capital of France is", max_tokens=8, temperature=0).text)
    for delta in client.stream("Once upon a time", max_tokens=32):
        print(delta.text, end="", flush=True)
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from service.gen.lethe.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    inference_pb2,
    inference_pb2_grpc,
)


@dataclass(frozen=True)
class Completion:
    variant: str
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    request_id: str


@dataclass(frozen=True)
class VariantInfo:
    name: str
    status: str
    engine: str
    parent: str
    is_default: bool


def status_name(value: int) -> str:
    return common_pb2.VariantStatus.Name(value).removeprefix("VARIANT_STATUS_").lower()


class LetheClient:
    """Blocking client. Tokens go in `authorization: Bearer` metadata; TLS when `root_cert`."""

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        token: str | None = None,
        admin_token: str | None = None,
        root_cert: Path | None = None,
        timeout: float | None = None,
    ) -> None:
        if root_cert is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=root_cert.read_bytes())
            self._channel = grpc.secure_channel(target, credentials)
        else:
            self._channel = grpc.insecure_channel(target)
        self._inference = inference_pb2_grpc.InferenceStub(self._channel)
        self._admin = admin_pb2_grpc.AdminStub(self._channel)
        self._token = token
        self._admin_token = admin_token if admin_token is not None else token
        self.timeout = timeout

    def __enter__(self) -> "LetheClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    @staticmethod
    def _metadata(token: str | None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {token}"),) if token else ()

    @staticmethod
    def request(
        prompt: str,
        *,
        variant: str = "",
        max_tokens: int = 0,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int = 0,
        seed: int | None = None,
        stop: list[str] | tuple[str, ...] = (),
        request_id: str = "",
    ) -> inference_pb2.GenerateRequest:
        sampling = inference_pb2.SamplingParams(max_tokens=max_tokens, top_k=top_k, stop=stop)
        if temperature is not None:
            sampling.temperature = temperature
        if top_p is not None:
            sampling.top_p = top_p
        if seed is not None:
            sampling.seed = seed
        return inference_pb2.GenerateRequest(
            variant=variant, prompt=prompt, sampling=sampling, request_id=request_id
        )

    def generate(self, prompt: str, **params) -> Completion:
        reply = self._inference.Generate(
            self.request(prompt, **params),
            timeout=self.timeout,
            metadata=self._metadata(self._token),
        )
        return Completion(
            variant=reply.variant,
            text=reply.text,
            finish_reason=reply.finish_reason,
            prompt_tokens=reply.usage.prompt_tokens,
            completion_tokens=reply.usage.completion_tokens,
            request_id=reply.request_id,
        )

    def stream(self, prompt: str, **params) -> Iterator[inference_pb2.GenerateStreamResponse]:
        """Stream messages; each has a `text` delta, the last one `finish_reason` and `usage`."""
        return self._inference.GenerateStream(
            self.request(prompt, **params),
            timeout=self.timeout,
            metadata=self._metadata(self._token),
        )

    def list_variants(self) -> list[VariantInfo]:
        reply = self._inference.ListVariants(
            inference_pb2.ListVariantsRequest(),
            timeout=self.timeout,
            metadata=self._metadata(self._token),
        )
        return [
            VariantInfo(v.name, status_name(v.status), v.engine, v.parent, v.is_default)
            for v in reply.variants
        ]

    def load_variant(
        self,
        name: str,
        *,
        checkpoint: str | Path | None = None,
        model: str | None = None,
        engine: str = "",
        engine_options: dict[str, str] | None = None,
        wait: bool = True,
    ) -> admin_pb2.VariantDetails:
        request = admin_pb2.LoadVariantRequest(
            name=name, engine=engine, engine_options=engine_options or {}, wait=wait
        )
        if checkpoint is not None:
            request.checkpoint = str(checkpoint)
        if model is not None:
            request.model = model
        return self._admin.LoadVariant(
            request, timeout=self.timeout, metadata=self._metadata(self._admin_token)
        ).variant

    def unload_variant(self, name: str) -> None:
        self._admin.UnloadVariant(
            admin_pb2.UnloadVariantRequest(name=name),
            timeout=self.timeout,
            metadata=self._metadata(self._admin_token),
        )

    def get_variant(self, name: str) -> admin_pb2.VariantDetails:
        return self._admin.GetVariant(
            admin_pb2.GetVariantRequest(name=name),
            timeout=self.timeout,
            metadata=self._metadata(self._admin_token),
        )
