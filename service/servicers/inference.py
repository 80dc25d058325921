"""`lethe.v1.Inference`: protobuf to `GenerateCall`, the data plane's chunks back to protobuf."""

from lethe.service.catalog import Catalog
from lethe.service.dataplane import DataPlane
from lethe.service.gen.lethe.v1 import inference_pb2, inference_pb2_grpc
from lethe.service.servicers.convert import (
    deadline_passed,
    generate_call_from_proto,
    passages_to_proto,
    usage_to_proto,
    variant_summary,
)


class InferenceServicer(inference_pb2_grpc.InferenceServicer):
    def __init__(self, plane: DataPlane, catalog: Catalog) -> None:
        self._plane = plane
        self._catalog = catalog

    async def Generate(self, request, context):
        call, text, last = generate_call_from_proto(request), [], None
        stream = self._plane.generate(call, method="Generate", deadline_passed=deadline_passed(context))
        async for chunk in stream:
            if last is None:
                context.set_trailing_metadata((("lethe-variant", chunk.variant),))
            text.append(chunk.text)
            last = chunk
        assert last is not None  # an engine stream always ends with a finishing chunk
        return inference_pb2.GenerateResponse(
            variant=last.variant,
            text="".join(text),
            finish_reason=last.finish_reason or "",
            usage=usage_to_proto(last),
            request_id=last.request_id,
            passages=passages_to_proto(last.passages),
        )

    async def GenerateStream(self, request, context):
        call, first = generate_call_from_proto(request), True
        stream = self._plane.generate(call, method="GenerateStream", deadline_passed=deadline_passed(context))
        async for chunk in stream:
            if first:
                context.set_trailing_metadata((("lethe-variant", chunk.variant),))
                first = False
            message = inference_pb2.GenerateStreamResponse(
                variant=chunk.variant, text=chunk.text, request_id=chunk.request_id
            )
            if chunk.finish_reason is not None:
                message.finish_reason = chunk.finish_reason
                message.usage.CopyFrom(usage_to_proto(chunk))
                message.passages.extend(passages_to_proto(chunk.passages))
            yield message

    async def ListVariants(self, request, context):
        return inference_pb2.ListVariantsResponse(
            variants=[variant_summary(v, self._catalog) for v in self._catalog.list()],
            default_variant=self._catalog.default_name or "",
        )
