"""Drive a real ComfyUI with the pack installed: start a headless server, convert UI
workflows to API prompts, queue them, wait, fetch outputs.

Used by `make demo`, the integration tests and the workflow builder. Standard
library plus `requests`, and aiohttp (a ComfyUI dependency) for the websocket progress messages.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any, Callable

import requests

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACK_NAME = "videopriors"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "file_upload")
UI_ONLY_NODES = {"Note", "MarkdownNote"}
# Environment every ComfyUI we start gets unless the caller's environment says otherwise. torch's OpenMP
# runtime (libgomp) spins at barriers by default and reads this only when torch is imported, so it has
# to be set before the server process starts: beside two CPU-bound processes a LiveSketch iteration took
# 19.7 s with spinning threads, 0.71 s with sleeping ones (bench/bench_busy.py).
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


def _pdeathsig_setter():
    """A function for the server's child process (Linux) that asks for SIGTERM when its parent dies.

    The server runs in its own session, so that a terminal's Ctrl-C reaches only our script (which
    then interrupts the prompt and stops the server); this keeps the server from outliving a script
    that was killed outright (Linux ties it to the thread that started the server, so that thread
    must outlive it: start() is called from main threads here). prctl is looked up here, in the
    parent: between fork and exec the child only calls it (no library loading, which could deadlock
    on a lock held by another thread)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        import signal

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    sigterm = int(signal.SIGTERM)
    return lambda: prctl(1, sigterm)  # 1 = PR_SET_PDEATHSIG


class EventStream:
    """ComfyUI's websocket messages (/ws?clientId=...) for one client, read on a background thread.

    Messages arrive as dicts {"type": ..., "data": {...}} in a queue; binary ones (preview images) are
    dropped. aiohttp is used because ComfyUI itself depends on it, so it is in any environment that
    runs ComfyUI.
    """

    def __init__(self, url: str, client_id: str):
        self.ws_url = url.replace("http://", "ws://", 1) + f"/ws?clientId={client_id}"
        self.events: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self._connected = threading.Event()
        self._loop = None
        self._ws = None
        self._thread = threading.Thread(target=self._run, name="comfy-events", daemon=True)

    def start(self, timeout: float = 60) -> "EventStream":
        self._thread.start()
        if not self._connected.wait(timeout) and self.error is None:
            self.error = TimeoutError(f"no websocket connection to {self.ws_url} after {timeout}s")
        if self.error is not None:
            raise ConnectionError(f"cannot follow {self.ws_url}: {self.error}")
        return self

    def _run(self):
        import asyncio

        try:
            asyncio.run(self._read())
        except BaseException as e:  # reported to start() / seen by readers as the end of the stream
            self.error = e
        finally:
            self._connected.set()
            self.events.put(None)

    async def _read(self):
        import asyncio

        import aiohttp

        self._loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(self.ws_url, max_msg_size=0) as ws:
                self._ws = ws
                self._connected.set()
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        try:
                            event = json.loads(msg.data)
                        except ValueError:
                            continue
                        if isinstance(event, dict):
                            self.events.put(event)
                    elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        break

    def get(self, timeout: float) -> dict | None:
        """The next message, or None after `timeout` seconds or once the stream has ended."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self):
        if self._loop is not None and self._ws is not None and self._thread.is_alive():
            import asyncio

            try:
                asyncio.run_coroutine_threadsafe(self._ws.close(), self._loop).result(10)
            except Exception:  # the loop may already be gone; the thread is a daemon either way
                pass
        self._thread.join(10)


TERMINAL_EVENTS = ("execution_success", "execution_error", "execution_interrupted")


class ComfyServer:
    """A headless ComfyUI subprocess on a free loopback port, with the pack linked in.

    No wait here is a fixed wall-clock limit by default: start() gives up only when the server
    prints nothing for `startup_timeout` seconds, and run()/wait() take an optional overall
    `timeout` and an optional `stall_timeout` (seconds without any message about the prompt).
    """

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
        self._events: EventStream | None = None

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
        self.proc = subprocess.Popen(cmd, cwd=comfyui_dir(), stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, preexec_fn=_pdeathsig_setter())
        last_size, last_change = -1, time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode} (log: {self.log_path}):\n"
                                   f"{self.log()[-4000:]}")
            try:
                if requests.get(self.url + "/system_stats", timeout=5).ok:
                    return self
            except requests.RequestException:
                pass
            size = os.path.getsize(self.log_path)
            if size != last_size:
                last_size, last_change = size, time.monotonic()
            elif time.monotonic() - last_change > self.startup_timeout:
                self.stop()
                raise RuntimeError(f"ComfyUI printed nothing for {self.startup_timeout}s while starting "
                                   f"(log: {self.log_path}):\n{self.log()[-4000:]}")
            time.sleep(0.5)

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self._events is not None:
            self._events.close()
            self._events = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "_log", None):
            self._log.close()

    def cleanup(self, keep: bool = False):
        """Stop the server and remove its base directory if we made it (unless keep: then the log stays)."""
        self.stop()
        if self._own_base and not keep:
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

    def events(self) -> EventStream | None:
        """The websocket stream of this client's messages (connected on first use), or None if it fails."""
        if self._events is None or not self._events.alive:
            try:
                self._events = EventStream(self.url, self.client_id).start()
            except ConnectionError:
                self._events = None
        return self._events

    def queue(self, prompt: dict) -> requests.Response:
        self.events()  # connected before the prompt is queued, so none of its messages is missed
        return requests.post(self.url + "/prompt", json={"prompt": prompt, "client_id": self.client_id}, timeout=30)

    def interrupt(self, prompt_id: str | None = None):
        """POST /interrupt: the running prompt (only if it is `prompt_id`, when given) stops at its next check."""
        requests.post(self.url + "/interrupt", json={"prompt_id": prompt_id} if prompt_id else {}, timeout=30)

    def history(self, prompt_id: str) -> dict | None:
        """The prompt's /history entry once it has finished (success, error or interruption), else None."""
        r = self.get(f"/history/{prompt_id}")
        if r.ok and prompt_id in r.json():
            entry = r.json()[prompt_id]
            status = entry.get("status", {})
            if status.get("completed") or status.get("status_str") == "error":
                return entry
        return None

    def wait(self, prompt_id: str, timeout: float | None = None, stall_timeout: float | None = None,
             on_event: Callable[[dict], None] | None = None) -> dict:
        """Wait for a queued prompt's /history entry.

        timeout: overall seconds (None: no limit). stall_timeout: seconds without any websocket
        message about this prompt and without new server output (None: no limit); a prompt that
        keeps reporting progress is never cut off by it. on_event(message) gets every websocket
        message about this prompt ({"type", "data"}). Raises RuntimeError if the server dies.
        """
        stream = self.events()
        start = last_activity = time.monotonic()
        log_size = os.path.getsize(self.log_path)
        next_poll = 0.0
        last_event = None
        ended = False  # this prompt's terminal websocket message has arrived
        while True:
            event = stream.get(0.5) if stream is not None else None
            if event is None and stream is not None and not stream.alive:
                stream = None  # the socket closed: keep going on /history alone
            now = time.monotonic()
            if event is not None and (event.get("data") or {}).get("prompt_id") == prompt_id:
                last_activity, last_event = now, event
                if on_event is not None:
                    on_event(event)
                if event.get("type") in TERMINAL_EVENTS:
                    next_poll, ended = 0.0, True
            if stream is None:
                time.sleep(0.25)
            if now >= next_poll:
                entry = self.history(prompt_id)
                if entry is not None:
                    # The history can be written before the last messages reach us: with a live socket,
                    # read on until the terminal message, so on_event sees the whole run.
                    if not ended and stream is not None:
                        self._drain(stream, prompt_id, on_event)
                    return entry
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"ComfyUI died while running {prompt_id} (log: {self.log_path}):\n"
                                       f"{self.log()[-4000:]}")
                size = os.path.getsize(self.log_path)
                if size != log_size:
                    log_size, last_activity = size, now
                next_poll = now + 1.0
            if timeout is not None and now - start > timeout:
                raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout}s (log: {self.log_path})")
            if stall_timeout is not None and now - last_activity > stall_timeout:
                raise TimeoutError(f"prompt {prompt_id} made no progress for {stall_timeout}s (last message: "
                                   f"{last_event}; log: {self.log_path})")

    @staticmethod
    def _drain(stream, prompt_id: str, on_event, quiet: float = 60.0) -> None:
        """Pass on this prompt's remaining messages until its terminal one (or `quiet` s without any message)."""
        last = time.monotonic()
        while True:
            event = stream.get(0.5)
            if event is None:
                if not stream.alive or time.monotonic() - last > quiet:
                    return
                continue
            last = time.monotonic()
            if (event.get("data") or {}).get("prompt_id") == prompt_id:
                if on_event is not None:
                    on_event(event)
                if event.get("type") in TERMINAL_EVENTS:
                    return

    def run(self, prompt: dict, timeout: float | None = None, stall_timeout: float | None = None,
            on_event: Callable[[dict], None] | None = None) -> dict:
        prompt_id = self.submit(prompt)
        return self.wait(prompt_id, timeout, stall_timeout, on_event)

    def submit(self, prompt: dict) -> str:
        """Queue a prompt; its id. RuntimeError with ComfyUI's answer if /prompt refuses it."""
        r = self.queue(prompt)
        if r.status_code != 200:
            raise RuntimeError(f"/prompt refused the prompt ({r.status_code}): {r.text[:4000]}")
        return r.json()["prompt_id"]

    def fetch(self, item: dict) -> bytes:
        r = self.get("/view", params={"filename": item["filename"], "subfolder": item.get("subfolder", ""),
                                      "type": item.get("type", "output")})
        r.raise_for_status()
        return r.content


class ProgressTracker:
    """Turns a prompt's websocket messages into lines such as
    "VP_AnimateSketch (node 5): step 37/200, 4.1 it/s, ~40 s left".

    update(message) returns a line to show, or None; progress lines come at most every `every`
    seconds (and always for a node's last step). `clock` is injectable for tests.
    """

    def __init__(self, prompt: dict, every: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self.names = {str(k): v.get("class_type", "?") for k, v in prompt.items()}
        self.every = every
        self.clock = clock
        self._first: dict[str, tuple[float, float]] = {}  # node -> (time, value) of its first progress message
        self._shown = -1e18
        self.last: dict | None = None  # the newest progress: node, value, max, rate

    def name(self, node) -> str:
        return f"{self.names.get(str(node), '?')} (node {node})"

    def update(self, message: dict) -> str | None:
        kind, data = message.get("type"), message.get("data") or {}
        now = self.clock()
        if kind == "executing" and data.get("node") is not None:
            return f"running {self.name(data['node'])}"
        if kind == "execution_cached" and data.get("nodes"):
            return f"cached: {', '.join(self.name(n) for n in data['nodes'])}"
        if kind == "execution_interrupted":
            return f"interrupted in {self.name(data.get('node_id'))}"
        if kind == "execution_error":
            return f"error in {self.name(data.get('node_id'))}: {data.get('exception_message', '').strip()}"
        if kind != "progress":
            return None
        node, value, total = str(data.get("node")), float(data.get("value", 0)), float(data.get("max", 0) or 0)
        t0, v0 = self._first.setdefault(node, (now, value))
        rate = (value - v0) / (now - t0) if now > t0 and value > v0 else None
        self.last = {"node": node, "value": value, "max": total, "rate": rate}
        if now - self._shown < self.every and value < total:
            return None
        self._shown = now
        line = f"{self.name(node)}: step {value:.0f}/{total:.0f}"
        if rate:
            line += f", {rate:.2f} it/s" if rate >= 1 else f", {1 / rate:.2f} s/it"
            line += f", ~{(total - value) / rate:.0f} s left" if value < total else ""
        return line


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
