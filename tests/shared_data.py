"""Where the shared reference data lives (`../shared` beside the repo; /work/shared on the development machine).

The golden fixtures and checkpoint manifests are the definition of "correct" for the LVDM family: where the folder
exists, a missing file is a failure; only a checkout with no shared folder at all skips (and CI fails even then).
"""
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CANDIDATES = [os.environ.get("VP_SHARED_DIR", ""), os.path.join(REPO, "..", "shared"), "/work/shared"]


def shared_root() -> str | None:
    for c in CANDIDATES:
        if c and os.path.isdir(os.path.join(c, "golden")):
            return os.path.normpath(c)
    return None


def shared_path(*parts: str) -> str:
    root = shared_root()
    if root is None:
        message = f"shared reference data not found (looked in {', '.join(c for c in CANDIDATES if c)})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    path = os.path.join(root, *parts)
    if not os.path.exists(path):
        pytest.fail(f"shared reference file missing: {path}")
    return path


def golden(*parts: str) -> str:
    return shared_path("golden", *parts)


def manifest(name: str) -> str:
    return shared_path("checkpoint-manifests", name if name.endswith(".txt") else name + ".txt")


def root_or_placeholder(*parts: str) -> str:
    """A module-level path under the shared folder (a placeholder when there is none: then `require_shared`
    skips, or fails under CI, before the path is used)."""
    return os.path.join(shared_root() or os.path.join(REPO, "..", "shared"), *parts)


@pytest.fixture
def require_shared():
    shared_path("golden")
    shared_path("checkpoint-manifests")
