"""The real ComfyUI runtime, in-process (execution.PromptExecutor) or as a server subprocess."""
from __future__ import annotations

import asyncio
import sys
import uuid

from comfy_runtime import comfyui_dir, prepare_base_dir

_STATE: dict = {}
# Seconds a server test waits without any message about its prompt (and no new server output) before
# it calls the prompt stuck: a guard against hangs, not a speed limit; a prompt that keeps reporting
# progress is waited for however slow the machine is.
STALL_TIMEOUT = 600


class RecordingServer:
    """Stands in for server.PromptServer: PromptExecutor only needs these members."""

    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.messages: list[tuple[str, dict]] = []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data))

    def queue_updated(self):
        pass


class InProcessComfy:
    """ComfyUI imported into this process with the pack loaded from a base directory's custom_nodes."""

    def __init__(self, base_dir: str):
        comfy = comfyui_dir()
        if comfy not in sys.path:
            sys.path.insert(0, comfy)
        from comfy.cli_args import args

        args.cpu = True
        args.disable_api_nodes = True
        args.base_directory = prepare_base_dir(base_dir)
        import folder_paths  # noqa: F401  (reads args.base_directory when first imported)
        # As main.py does: import ComfyUI's `utils` package before `nodes`, which puts comfy/ first on
        # sys.path (where comfy/utils.py would then shadow it for server.py and app/).
        import utils.install_util  # noqa: F401
        import execution
        import nodes

        import_failed = asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
        self.nodes = nodes
        self.execution = execution
        self.import_failed = import_failed
        self.server = RecordingServer()
        self.executor = execution.PromptExecutor(self.server, cache_type=False,
                                                 cache_args={"lru": args.cache_lru, "ram": args.cache_ram})
        self.base_dir = base_dir

    def validate(self, prompt: dict):
        return asyncio.run(self.execution.validate_prompt(uuid.uuid4().hex, prompt, None))

    def run(self, prompt: dict):
        """Validate and execute a prompt; returns (executor, recorded messages)."""
        valid = self.validate(prompt)
        if not valid[0]:
            raise AssertionError(f"prompt failed validation: {valid[1]} {valid[3]}")
        self.server.messages.clear()
        self.executor.execute(prompt, uuid.uuid4().hex, {"client_id": "test"}, valid[2])
        return self.executor

    def object_info(self) -> dict:
        """What /object_info would say about the inputs and outputs of every node (the parts workflows need)."""
        from comfy_api.internal import _ComfyNodeInternal

        out = {}
        for name, cls in self.nodes.NODE_CLASS_MAPPINGS.items():
            if issubclass(cls, _ComfyNodeInternal):
                out[name] = cls.GET_NODE_INFO_V1()
                continue
            types = cls.INPUT_TYPES()
            out[name] = {"input": types, "input_order": {k: list(v) for k, v in types.items()},
                         "output": cls.RETURN_TYPES, "output_name": getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES),
                         "category": getattr(cls, "CATEGORY", "sd")}
        return out


def inprocess(base_dir: str) -> InProcessComfy:
    if "inproc" not in _STATE:
        _STATE["inproc"] = InProcessComfy(base_dir)
    return _STATE["inproc"]


def has_runtime() -> bool:
    try:
        comfyui_dir()
        return True
    except RuntimeError:
        return False
