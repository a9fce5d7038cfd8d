"""Drive a real ComfyUI with the pack installed: start a headless server, convert UI
workflows to API prompts, queue them, wait, fetch outputs.

Used by `make demo`, the integration tests and the workflow builder. Standard
library plus `requests` only.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import requests

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACK_NAME = "videopriors"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "file_upload")
UI_ONLY_NODES = {"Note", "MarkdownNote"}
# Environment every ComfyUI we start gets unless the caller's environment says otherwise. torch's OpenMP
# runtime (libgomp) spins at barriers by default and reads this only when torch is imported, so it has
# to be set before the server process starts: with spinning threads a LiveSketch iteration beside two
# CPU-bound processes took 20x its quiet time, sleeping threads keep it near 2x (bench/bench_busy.py).
SERVER_ENV_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


def comfyui_dir() -> str:
    path = os.environ.get("COMFYUI_PATH") or os.environ.get("VP_COMFYUI")
    if not path or not os.path.isfile(os.path.join(path, "main.py")):
        raise RuntimeError("Set COMFYUI_PATH (or VP_COMFYUI, done by the Makefile) to a ComfyUI folder with main.py")
    return os.path.abspath(path)


def prepare_base_dir(base: str) -> str:
    """A ComfyUI base directory whose custom_nodes/videopriors links to this repo (never a copy)."""
    for sub in ("custom_nodes", "input", "output", "temp", "user", "models"):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    link = os.path.join(base, "custom_nodes", PACK_NAME)
    if os.path.islink(link) and os.path.realpath(link) != os.path.realpath(REPO):
        os.unlink(link)
    if not os.path.lexists(link):
        os.symlink(REPO, link, target_is_directory=True)
    return base


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """A headless ComfyUI subprocess on a free loopback port, with the pack linked in."""

    def __init__(self, base_dir: str | None = None, extra_args: list[str] | None = None, startup_timeout: float = 240,
                 env: dict[str, str | None] | None = None):
        """env: variables to set in the server's environment (None removes one), over os.environ and
        SERVER_ENV_DEFAULTS."""
        self._own_base = base_dir is None
        self.base_dir = prepare_base_dir(base_dir or tempfile.mkdtemp(prefix="vp-comfy-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = extra_args or []
        self.startup_timeout = startup_timeout
        self.log_path = os.path.join(self.base_dir, "comfyui.log")
        self.proc: subprocess.Popen | None = None
        self.client_id = uuid.uuid4().hex
        self.env_overrides = dict(env or {})

    def start(self) -> "ComfyServer":
        cmd = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--disable-auto-launch", "--disable-api-nodes", "--base-directory", self.base_dir,
               "--database-url", "sqlite:///:memory:", *self.extra_args]
        self._log = open(self.log_path, "w")
        env = {**SERVER_ENV_DEFAULTS, **os.environ, "PYTHONUNBUFFERED": "1"}
        for key, value in self.env_overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        self.proc = subprocess.Popen(cmd, cwd=comfyui_dir(), stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + self.startup_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                if requests.get(self.url + "/system_stats", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ComfyUI did not start within {self.startup_timeout}s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "_log", None):
            self._log.close()

    def cleanup(self):
        self.stop()
        if self._own_base:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- HTTP API -----------------------------------------------------------------
    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=kw.pop("timeout", 30), **kw)

    def object_info(self) -> dict:
        r = self.get("/object_info")
        r.raise_for_status()
        return r.json()

    def queue(self, prompt: dict) -> requests.Response:
        return requests.post(self.url + "/prompt", json={"prompt": prompt, "client_id": self.client_id}, timeout=30)

    def interrupt(self):
        requests.post(self.url + "/interrupt", timeout=10)

    def wait(self, prompt_id: str, timeout: float = 600) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.get(f"/history/{prompt_id}")
            if r.ok and prompt_id in r.json():
                entry = r.json()[prompt_id]
                if entry.get("status", {}).get("completed") or entry.get("status", {}).get("status_str") == "error":
                    return entry
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI died while running {prompt_id}:\n{self.log()[-4000:]}")
            time.sleep(0.25)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout}s")

    def run(self, prompt: dict, timeout: float = 600) -> dict:
        r = self.queue(prompt)
        if r.status_code != 200:
            raise RuntimeError(f"/prompt refused the prompt ({r.status_code}): {r.text[:4000]}")
        return self.wait(r.json()["prompt_id"], timeout)

    def fetch(self, item: dict) -> bytes:
        r = self.get("/view", params={"filename": item["filename"], "subfolder": item.get("subfolder", ""),
                                      "type": item.get("type", "output")})
        r.raise_for_status()
        return r.content


def output_files(history_entry: dict) -> list[tuple[str, str, dict]]:
    """(node_id, kind, item) for every file a finished prompt reported (images, gifs, videos...)."""
    out = []
    for node_id, outputs in history_entry.get("outputs", {}).items():
        for kind, items in outputs.items():
            if isinstance(items, list):
                for item in items:
                    if isinstance(item, dict) and "filename" in item:
                        out.append((node_id, kind, item))
    return out


# --- UI workflow -> API prompt ------------------------------------------------------------

def _input_specs(info: dict) -> list[tuple[str, list]]:
    order = info.get("input_order") or {k: list(v) for k, v in info.get("input", {}).items()}
    specs = []
    for section in ("required", "optional"):
        table = info.get("input", {}).get(section, {})
        for name in order.get(section, []):
            if name in table:
                specs.append((name, table[name]))
    return specs


def _is_widget(spec: list) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _extra_widget_slots(name: str, spec: list) -> int:
    """Frontend widgets whose value follows an input's value in widgets_values (the seed's control).

    An upload button (image_upload...) is serialised too, but at the end of the node's values,
    after every input, so it never shifts the inputs' positions.
    """
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if spec[0] == "INT" and (opts.get("control_after_generate") or name in ("seed", "noise_seed")):
        return 1
    return 0


def has_upload_widget(info: dict) -> bool:
    return any(isinstance(spec[1] if len(spec) > 1 else None, dict) and any(spec[1].get(f) for f in UPLOAD_FLAGS)
               for _name, spec in _input_specs(info))


def workflow_to_prompt(workflow: dict, object_info: dict) -> dict:
    """Convert a UI-format (LiteGraph) workflow into the API prompt that /prompt takes."""
    links = {link[0]: link for link in workflow.get("links", [])}
    prompt: dict[str, Any] = {}
    for node in workflow["nodes"]:
        ntype = node["type"]
        if ntype in UI_ONLY_NODES or node.get("mode", 0) in (2, 4):
            continue
        if ntype not in object_info:
            raise KeyError(f"node {node['id']}: type {ntype!r} is not installed in this ComfyUI")
        linked = {i["name"]: i["link"] for i in node.get("inputs", []) if i.get("link") is not None}
        values = node.get("widgets_values", [])
        inputs: dict[str, Any] = {}
        pos = 0
        for name, spec in _input_specs(object_info[ntype]):
            if _is_widget(spec):
                if isinstance(values, dict):
                    value = values.get(name)
                else:
                    value = values[pos] if pos < len(values) else None
                    pos += 1 + _extra_widget_slots(name, spec)
                if name not in linked and value is not None:
                    inputs[name] = value
            if name in linked:
                link = links[linked[name]]
                inputs[name] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": ntype, "inputs": inputs}
    return prompt


def load_workflow(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)
