import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Appended, not prepended: ComfyUI's own top-level modules (nodes, utils, app...) must win over
# the pack's folders of the same name when the integration tests import ComfyUI in-process.
for p in (ROOT, os.path.join(ROOT, "scripts")):
    if p not in sys.path:
        sys.path.append(p)
