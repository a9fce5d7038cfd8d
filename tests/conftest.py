import os
import sys

# torch's OpenMP runtime (libgomp) reads its wait policy once, when torch is first imported: set it
# before any test module imports torch (and for every process the tests start), so idle OpenMP threads
# sleep instead of spinning on cores that other work needs (see bench/bench_busy.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Appended, not prepended: ComfyUI's own top-level modules (nodes, utils, app...) must win over
# the pack's folders of the same name when the integration tests import ComfyUI in-process.
for p in (ROOT, os.path.join(ROOT, "scripts")):
    if p not in sys.path:
        sys.path.append(p)

import pytest  # noqa: E402


TINY_PRIOR_NAME = "text-to-video-ms-1.7b"  # the folder name the example workflow asks for


def install_test_models(base_dir: str) -> str:
    """Put a tiny random diffusers text-to-video folder where the real ModelScope folder would go."""
    from pipelines.priors.tiny_models import build_tiny_t2v_folder

    path = os.path.join(base_dir, "models", "video_priors", TINY_PRIOR_NAME)
    if not os.path.isdir(path):
        build_tiny_t2v_folder(path, seed=0)
    return path


def install_example_image(base_dir: str) -> None:
    """ComfyUI ships input/example.png (the LoadImage default the DynamiCrafter workflows use): so does a test base."""
    import shutil

    from comfy_runtime import comfyui_dir

    src = os.path.join(comfyui_dir(), "input", "example.png")
    dst = os.path.join(base_dir, "input", "example.png")
    if os.path.isfile(src) and not os.path.exists(dst):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(src, dst)


def install_lvdm_test_models(base_dir: str) -> None:
    """Tiny official-layout LVDM checkpoints and the test-only encoder-config custom node (tests/lvdm_tiny.py), tiny
    depth models and a source video (tests/depth_tiny.py), a RIFE file (tests/rife_files.py), so
    the shared server can run every VP_ node on its defaults (tests/test_api_hardening.py). Needs the shared
    checkpoint manifests; without them the LVDM files are left out (the tests that need them skip or fail there)."""
    import lvdm_tiny
    from shared_data import shared_root

    if shared_root() is None:
        return
    lvdm_tiny.install_checkpoints(base_dir, ("videocrafter2_512", "dynamicrafter_512", "makeyourvideo_256"))
    lvdm_tiny.install_custom_node(base_dir)
    import depth_tiny

    depth_tiny.install_depth_models(base_dir)
    depth_tiny.install_source_video(base_dir)
    import rife_files

    rife_files.install_rife_model(base_dir)  # models/frame_interpolation/rife47.pth (golden 4.7 weights)


def _runtime_base_dir(tmp_path_factory, name: str) -> str:
    """A fresh ComfyUI base directory with the test models installed (fails without a runtime)."""
    from comfy_env import has_runtime

    if not has_runtime():
        pytest.fail("no ComfyUI runtime: run the tests with `make test` (or set COMFYUI_PATH)")
    base = str(tmp_path_factory.mktemp(name))
    install_test_models(base)
    install_example_image(base)
    return base


@pytest.fixture(scope="session")
def comfy_inproc(tmp_path_factory):
    from comfy_env import inprocess

    return inprocess(_runtime_base_dir(tmp_path_factory, "comfy-inproc"))


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory):
    from comfy_runtime import ComfyServer

    base = _runtime_base_dir(tmp_path_factory, "comfy-server")
    install_lvdm_test_models(base)
    server = ComfyServer(base)
    server.start()
    yield server
    server.stop()
