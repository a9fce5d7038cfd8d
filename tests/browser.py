"""Drive the real ComfyUI frontend (served by a running ComfyServer) in Debian's headless Chromium.

Playwright's Python package talks to /usr/bin/chromium (never `playwright install`). The page:

* gets SETTINGS merged into its GET /api/settings answer (the server's stored settings are not
  touched): a fresh user directory would otherwise open the templates browser, and the missing-nodes
  warning and workflow validation are switched on whatever the server has stored;
* resolves every host except the loopback server to NOTFOUND (--host-resolver-rules), so calls the
  frontend makes to the internet (api.comfy.org, ...) fail fast and the same way every run;
* records console errors and uncaught page errors; `console_problems()` keeps all of them except
  the console messages `ignored_reason()` names, which are exactly:
  - requests to hosts other than the loopback server (blocked by the server's Content-Security-Policy
    "connect-src 'self'", e.g. api.comfy.org node-registry lookups, or net::ERR_* on the closed network);
  - HTTP 404 for the optional user files in OPTIONAL_404, on the server itself;
  - the frontend 1.32 startup bug FRONTEND_STARTUP_BUG, only before the app was ready.
  Uncaught page errors are never ignored, nor are 404s or network errors of any other server URL;
* registers a probe extension whose afterConfigureGraph hook receives the list of node types the
  frontend found missing while loading a graph.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

CHROMIUM = os.environ.get("VP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
VIEWPORT = {"width": 1600, "height": 1000}

# Settings merged into the frontend's view of GET /api/settings.
SETTINGS = {
    "Comfy.TutorialCompleted": True,                 # else a fresh user gets the templates dialog
    "Comfy.Workflow.ShowMissingNodesWarning": True,  # the missing-nodes dialog we assert is absent
    "Comfy.Workflow.ShowMissingModelsWarning": True,
    "Comfy.Validation.Workflows": True,              # link/schema problems become warn toasts
    "Comfy.Minimap.Visible": False,                  # screenshots: the graph, not its minimap
}
# Page-side state set before the app's scripts run: the "Introducing Nodes 2.0" banner stays closed.
INIT_JS = "try { localStorage.setItem('vueNodesBannerDismissed', 'true') } catch (e) {}"

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}

# Optional files the frontend probes on every start; an empty user directory answers 404 and Chromium
# logs "Failed to load resource: ... 404". Only these exact server paths (query included) are ignored.
OPTIONAL_404 = {
    "/user.css",
    "/favicon.ico",
    "/api/userdata/user.css",
    "/api/userdata/comfy.templates.json",
    "/api/userdata?dir=workflows&recurse=true&split=false&full_info=true",
    "/api/userdata?dir=subgraphs%2F&recurse=true&split=false&full_info=true",
}

# Frontend 1.32.x bug, seen on every start before any graph is loaded: GraphView's
# useRenderModeSetting sets LiteGraph.Canvas.MinFontSizeForLOD before the setting definitions are
# registered, so the settings store's onChange reads `.id` of undefined (logged by Vue, not thrown).
FRONTEND_STARTUP_BUG = ("TypeError: Cannot read properties of undefined (reading 'id')",
                        "at onChange (", "at Proxy.set (")

CSP_BLOCK = re.compile(r"^(?:Connecting to|Refused to (?:load|connect to)(?: the \w+)?) '([^']+)'.*"
                       r"violates the following Content Security Policy directive")

PROBE_JS = """() => {
  window.__vpMissing = [];
  app.registerExtension({
    name: 'videopriors.test.probe',
    afterConfigureGraph(missing) {
      window.__vpMissing.push((missing || []).map(m => typeof m === 'string' ? m : m.type));
    },
  });
}"""

READY_JS = """(required) => !!(window.app && window.app.graph && window.app.canvas && window.LiteGraph
  && window.LiteGraph.registered_node_types && Object.keys(window.LiteGraph.registered_node_types).length > 50
  && required.every(t => t in window.LiteGraph.registered_node_types)
  && document.querySelector('canvas#graph-canvas'))"""

# Everything about the graph after loading, for the Python side to judge.
LOAD_JS = """async ([wf, name]) => {
  window.__vpMissing = [];
  await window.app.loadGraphData(wf, true, true, name);
  const graph = window.app.graph;
  const nodes = (graph._nodes || graph.nodes).map(n => ({
    id: n.id, type: n.type, title: n.title, comfyClass: n.comfyClass ?? null,
    registered: n.type in LiteGraph.registered_node_types,
    has_errors: !!n.has_errors,
    widgets: (n.widgets || []).map(w => ({name: w.name, type: w.type, value: w.value ?? null,
                                          serialize: w.serialize !== false})),
  }));
  window.app.canvas.setDirty(true, true);
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return {nodes, missing: window.__vpMissing.flat(), links: Object.keys(graph.links ?? {}).length
          || (graph.links?.size ?? 0)};
}"""

# Visible overlays: PrimeVue dialogs (missing nodes / missing models / error dialog all use
# .p-dialog role=dialog) and toasts (.p-toast-message, severity in the class: -error, -warn, ...).
# Toasts that are already animating away (-leave-active) do not count.
OVERLAYS_JS = """() => {
  const visible = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  const dialogs = Array.from(document.querySelectorAll('.p-dialog, [role=dialog], [role=alertdialog]'))
    .filter(visible).map(e => ({cls: e.className, text: e.innerText.trim().slice(0, 500)}));
  const toasts = Array.from(document.querySelectorAll('.p-toast-message'))
    .filter(e => visible(e) && !e.classList.contains('p-toast-message-leave-active'))
    .map(e => ({cls: e.className, text: e.innerText.trim().slice(0, 500)}));
  return {dialogs, toasts};
}"""


@dataclass
class ConsoleEntry:
    kind: str  # "console" or "pageerror"
    text: str
    url: str = ""
    t: float = field(default_factory=time.monotonic)

    def __str__(self):
        where = f" [{self.url}]" if self.url else ""
        return f"{self.kind}: {self.text[:1500]}{where}"


def _is_external(url: str, server_host: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOOPBACK | {server_host}


def ignored_reason(entry: ConsoleEntry, server_url: str, ready_at: float | None) -> str | None:
    """Why a console error is harmless here, or None when it is a real problem."""
    if entry.kind != "console":
        return None  # uncaught page errors always fail
    host = urlsplit(server_url).hostname
    text = entry.text
    csp = CSP_BLOCK.match(text)
    if csp and _is_external(csp.group(1), host):
        return "external host blocked by the server's CSP"
    if text.startswith("Failed to load resource: net::") and _is_external(entry.url, host):
        return "external host unreachable (closed network)"
    if text.startswith("Failed to load resource: the server responded with a status of 404") and entry.url:
        parts = urlsplit(entry.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if parts.netloc == urlsplit(server_url).netloc and path in OPTIONAL_404:
            return "optional user file absent"
    if ready_at is not None and entry.t <= ready_at and all(s in text for s in FRONTEND_STARTUP_BUG):
        return "frontend 1.32 startup settings bug"
    return None


def launch(playwright):
    """Debian's chromium through Playwright, with a throw-away profile directory."""
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"no Chromium at {CHROMIUM}: run `make browser-deps` (Debian's chromium package)")
    profile = tempfile.mkdtemp(prefix="vp-chromium-")
    context = playwright.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, viewport=VIEWPORT,
        device_scale_factor=1)
    context.on("close", lambda *_: shutil.rmtree(profile, ignore_errors=True))
    return context


class FrontendPage:
    """One browser tab on the ComfyUI frontend."""

    def __init__(self, context, server_url: str):
        self.server_url = server_url.rstrip("/")
        self.page = context.new_page()
        self.page.add_init_script(INIT_JS)
        self.entries: list[ConsoleEntry] = []
        self.ready_at: float | None = None
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda exc: self.entries.append(ConsoleEntry("pageerror", str(exc))))
        self.page.route(self.server_url + "/api/settings", self._settings)

    def _on_console(self, msg):
        if msg.type == "error":
            self.entries.append(ConsoleEntry("console", msg.text, (msg.location or {}).get("url", "")))

    def _settings(self, route):
        if route.request.method != "GET":
            return route.continue_()
        response = route.fetch()
        data = response.json() if response.ok else {}
        data.update(SETTINGS)
        route.fulfill(response=response, json=data)

    def open(self, required_types=(), timeout: float = 600) -> float:
        """Load the app and wait until it and the given node types are registered; returns seconds.

        timeout is a guard against a page that never becomes ready, not a speed limit (a busy machine
        can take minutes)."""
        t0 = time.monotonic()
        self.page.goto(self.server_url + "/", wait_until="domcontentloaded", timeout=timeout * 1000)
        try:
            self.page.wait_for_function(READY_JS, arg=list(required_types), timeout=timeout * 1000,
                                        polling=250)
        except Exception as exc:
            have = self.page.evaluate("() => window.LiteGraph ? Object.keys(LiteGraph.registered_node_types)"
                                      ".filter(t => t.startsWith('VP_')) : null")
            raise AssertionError(f"frontend not ready within {timeout}s (registered VP_ types: {have}; "
                                 f"console: {[str(e) for e in self.entries][:10]})") from exc
        # the app loads the default graph right after setup; let that settle before we start
        self.page.wait_for_function("() => !!window.app.graph && window.app.graph.nodes !== undefined")
        self.page.wait_for_timeout(300)
        self.ready_at = time.monotonic()
        self.page.evaluate(PROBE_JS)
        return self.ready_at - t0

    def load(self, workflow: dict, name: str | None = None) -> dict:
        """app.loadGraphData(workflow) as if the file `name` had been opened; the graph and overlays after it."""
        report = self.page.evaluate(LOAD_JS, [workflow, name])
        self.page.wait_for_timeout(400)  # dialogs and toasts are mounted on the next ticks
        report.update(self.overlays())
        return report

    def widget_layout(self, types: list[str]) -> dict:
        """{type: [names of the widgets a fresh node serialises into widgets_values, in order]}."""
        return self.page.evaluate("""(types) => Object.fromEntries(types.map(t => {
            const node = LiteGraph.createNode(t);
            return [t, node ? (node.widgets || []).filter(w => w.serialize !== false).map(w => w.name) : null];
        }))""", types)

    def overlays(self) -> dict:
        return self.page.evaluate(OVERLAYS_JS)

    def clear_overlays(self, timeout: float = 60):
        """Close dialogs and toasts (after a negative check) and wait until none is visible."""
        self.page.evaluate("() => window.app.extensionManager?.toast?.removeAll?.()")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.overlays()
            if not state["dialogs"] and not state["toasts"]:
                return
            if state["dialogs"]:
                self.page.keyboard.press("Escape")
            self.page.wait_for_timeout(200)
        raise AssertionError(f"overlays did not close: {self.overlays()}")

    def screenshot(self, path: str, fit: bool = True):
        """PNG of the window; `fit` first zooms the canvas to the whole graph (the UI's "Zoom to fit")."""
        if fit:
            self.page.evaluate("async () => { await app.extensionManager.command.execute('Comfy.Canvas.FitView');"
                               " app.canvas.setDirty(true, true); }")
            self.page.wait_for_timeout(500)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.page.screenshot(path=path)

    def mark(self) -> int:
        return len(self.entries)

    def console_problems(self, since: int = 0) -> list[str]:
        return [str(e) for e in self.entries[since:] if ignored_reason(e, self.server_url, self.ready_at) is None]

    def close(self):
        self.page.close()
