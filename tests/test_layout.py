"""Pack layout rules: pipelines/ is plain PyTorch, the entry point is V3 only, imports are relative."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The one adapter module per backend that may import ComfyUI inside pipelines/.
COMFY_ADAPTERS = {os.path.join("pipelines", "priors", "comfy_prior.py"), os.path.join("pipelines", "lvdm", "comfy_model.py")}
COMFY_MODULES = ("comfy", "comfy_api", "comfy_extras", "comfy_execution", "folder_paths", "nodes", "execution",
                 "server", "node_helpers", "latent_preview")


def python_files(folder):
    for dirpath, _dirs, files in os.walk(os.path.join(ROOT, folder)):
        for f in files:
            if f.endswith(".py"):
                yield os.path.join(dirpath, f)


def imported_modules(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


def test_pipelines_import_no_comfy_module_outside_the_adapters():
    offenders = []
    for path in python_files("pipelines"):
        rel = os.path.relpath(path, ROOT)
        if rel in COMFY_ADAPTERS:
            continue
        for name, level in imported_modules(path):
            if level == 0 and name.split(".")[0] in COMFY_MODULES:
                offenders.append(f"{rel}: {name}")
    assert not offenders, offenders


def test_pack_modules_import_each_other_relatively():
    """ComfyUI imports the pack under its folder's full path: absolute imports of our own folders break."""
    ours = {"nodes", "pipelines"}
    offenders = []
    for folder in ("nodes", "pipelines"):
        for path in python_files(folder):
            for name, level in imported_modules(path):
                if level == 0 and name.split(".")[0] in ours:
                    offenders.append(f"{os.path.relpath(path, ROOT)}: {name}")
    assert not offenders, offenders


def test_entrypoint_is_v3_only():
    source = open(os.path.join(ROOT, "__init__.py"), encoding="utf-8").read()
    assert "comfy_entrypoint" in source
    assert "NODE_CLASS_MAPPINGS" not in source
