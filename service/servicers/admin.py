"""`lethe.v1.Admin`: load, unload and inspect variants at run time."""

from pathlib import Path

from pydantic import ValidationError

from lethe.service.config import VariantSpec
from lethe.service.errors import InvalidRequest
from lethe.service.gen.lethe.v1 import admin_pb2, admin_pb2_grpc
from lethe.service.registry import VariantRegistry
from lethe.service.servicers.convert import policy_from_proto, variant_details


class AdminServicer(admin_pb2_grpc.AdminServicer):
    def __init__(self, registry: VariantRegistry) -> None:
        self._registry = registry

    async def LoadVariant(self, request, context):
        source = request.WhichOneof("source")
        if source is None:
            raise InvalidRequest(
                "source", "give `checkpoint` (a directory), `model` (a name) or `alias_of` (a variant)"
            )
        if request.engine and request.engine not in ("transformers", "vllm"):
            raise InvalidRequest("engine", f"{request.engine!r}: use transformers or vllm")
        retrieval = policy_from_proto(request.retrieval) if request.HasField("retrieval") else None
        try:
            spec = VariantSpec(
                name=request.name,
                checkpoint=Path(request.checkpoint) if source == "checkpoint" else None,
                model=request.model if source == "model" else None,
                alias_of=request.alias_of if source == "alias_of" else None,
                engine=request.engine or None,
                options=dict(request.engine_options),
                retrieval=retrieval,
            )
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "name"
            raise InvalidRequest(field, first["msg"]) from None
        variant = await self._registry.load(spec, wait=request.wait)
        return admin_pb2.LoadVariantResponse(variant=variant_details(variant, self._registry))

    async def UnloadVariant(self, request, context):
        await self._registry.unload(request.name)
        return admin_pb2.UnloadVariantResponse(name=request.name)

    async def GetVariant(self, request, context):
        return variant_details(self._registry.get(request.name), self._registry)
