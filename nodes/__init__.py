"""ComfyUI adapters (V3 schema) for the VideoPriors pipelines."""
from __future__ import annotations

import logging

from comfy_api.latest import ComfyExtension, io

from ..pipelines.cpu_threads import wait_policy_warning
from .comfy_prior_nodes import COMFY_PRIOR_NODES
from .depth_nodes import DEPTH_NODES
from .depth_nodes import register_folders as register_depth_folders
from .interpolation_nodes import INTERPOLATION_NODES
from .interpolation_nodes import register_folders as register_interpolation_folders
from .livesketch_nodes import LIVESKETCH_NODES
from .lvdm_keyframes_nodes import KEYFRAME_NODES
from .lvdm_nodes import LVDM_NODES
from .lvdm_sampling_nodes import LVDM_SAMPLING_NODES
from .myv_nodes import MYV_NODES
from .prior_loading import register_folders
from .sampling_nodes import SAMPLING_NODES
from .sketch_nodes import SKETCH_NODES

register_folders()
register_depth_folders()
register_interpolation_folders()
_spin_warning = wait_policy_warning()
if _spin_warning:
    logging.getLogger("VideoPriors").warning("VideoPriors: %s", _spin_warning)


class VideoPriorsExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [*SKETCH_NODES, *LIVESKETCH_NODES, *COMFY_PRIOR_NODES, *SAMPLING_NODES, *LVDM_NODES,
                *LVDM_SAMPLING_NODES, *KEYFRAME_NODES, *DEPTH_NODES, *MYV_NODES, *INTERPOLATION_NODES]


async def comfy_entrypoint() -> VideoPriorsExtension:
    return VideoPriorsExtension()
