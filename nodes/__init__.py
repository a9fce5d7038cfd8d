"""ComfyUI adapters (V3 schema) for the VideoPriors pipelines."""
from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .sketch_nodes import SKETCH_NODES


class VideoPriorsExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(SKETCH_NODES)


async def comfy_entrypoint() -> VideoPriorsExtension:
    return VideoPriorsExtension()
