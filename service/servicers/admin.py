"""`lethe.v1.Admin`: load, unload and inspect variants at run time."""

from lethe.service.catalog import Catalog
from lethe.service.gen.lethe.v1 import admin_pb2, admin_pb2_grpc
from lethe.service.servicers.convert import variant_details, variant_spec_from_proto
from lethe.service.variants import VariantManager


class AdminServicer(admin_pb2_grpc.AdminServicer):
    def __init__(self, variants: VariantManager, catalog: Catalog) -> None:
        self._variants = variants
        self._catalog = catalog

    async def LoadVariant(self, request, context):
        variant = await self._variants.load_requested(variant_spec_from_proto(request), wait=request.wait)
        return admin_pb2.LoadVariantResponse(variant=variant_details(variant, self._catalog))

    async def UnloadVariant(self, request, context):
        await self._variants.unload(request.name)
        return admin_pb2.UnloadVariantResponse(name=request.name)

    async def GetVariant(self, request, context):
        return variant_details(self._catalog.get(request.name), self._catalog)
