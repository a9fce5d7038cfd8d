import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Appended, not prepended: ComfyUI's own top-level modules (nodes, utils, app...) must win over
# the pack's folders of the same name when the integration tests import ComfyUI in-process.
for p in (ROOT, os.path.join(ROOT, "scripts")):
    if p not in sys.path:
        sys.path.append(p)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def comfy_inproc(tmp_path_factory):
    from comfy_env import has_runtime, inprocess

    if not has_runtime():
        pytest.fail("no ComfyUI runtime: run the tests with `make test` (or set COMFYUI_PATH)")
    return inprocess(str(tmp_path_factory.mktemp("comfy-inproc")))


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory):
    from comfy_env import ComfyServer, has_runtime

    if not has_runtime():
        pytest.fail("no ComfyUI runtime: run the tests with `make test` (or set COMFYUI_PATH)")
    server = ComfyServer(str(tmp_path_factory.mktemp("comfy-server")))
    server.start()
    yield server
    server.stop()
