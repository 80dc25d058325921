"""Registry and engine objects to protobuf messages (the only place that builds them)."""

import json

from service.gen.lethe.v1 import admin_pb2, common_pb2
from service.registry import FAILED, LOADING, READY, UNLOADING, Variant, VariantRegistry

STATUS = {
    LOADING: common_pb2.VARIANT_STATUS_LOADING,
    READY: common_pb2.VARIANT_STATUS_READY,
    FAILED: common_pb2.VARIANT_STATUS_FAILED,
    UNLOADING: common_pb2.VARIANT_STATUS_UNLOADING,
}


def variant_summary(variant: Variant, registry: VariantRegistry) -> common_pb2.Variant:
    return common_pb2.Variant(
        name=variant.name,
        status=STATUS[variant.status],
        engine=variant.engine_name,
        parent=variant.parent,
        is_default=variant.name == registry.default_name,
    )


def variant_details(variant: Variant, registry: VariantRegistry) -> admin_pb2.VariantDetails:
    memory = variant.memory()
    return admin_pb2.VariantDetails(
        name=variant.name,
        status=STATUS[variant.status],
        engine=variant.engine_name,
        checkpoint=str(variant.source or ""),
        parent=variant.parent,
        edit_manifest_json=json.dumps(variant.manifest) if variant.manifest else "",
        memory=admin_pb2.MemoryUsage(
            parameter_bytes=memory.parameter_bytes,
            shared_bytes=memory.shared_bytes,
            own_bytes=memory.own_bytes,
        ),
        error=variant.error,
        is_default=variant.name == registry.default_name,
        edited_tensors=variant.edited_tensors,
    )
