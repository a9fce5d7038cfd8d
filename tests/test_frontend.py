"""The real ComfyUI frontend (served by the session's ComfyUI server) in Debian's headless Chromium.

Every workflows/*.json is loaded with app.loadGraphData exactly as the UI would load a dropped file;
the graph must contain only registered node types, no missing-nodes dialog / error dialog / toast may
show up, the VP_ nodes' widgets must hold the workflow's widgets_values, and the browser console
must stay clean (tests/browser.py documents the few messages that are ignored and why). A screenshot
of each loaded graph is kept as output/frontend_<workflow>.png. The negative tests prove that each
of those detectors fires: a bogus node type, a broken link, a graph that fails to configure, an
error toast, an uncaught page error and widget-order drift.
"""
from __future__ import annotations

import copy
import glob
import math
import os
import time

import pytest

from browser import ConsoleEntry, FrontendPage, ignored_reason, launch
from comfy_env import STALL_TIMEOUT
from comfy_runtime import REPO, _input_specs, load_workflow, workflow_to_prompt

pytestmark = [pytest.mark.browser, pytest.mark.server]

WORKFLOWS = sorted(glob.glob(os.path.join(REPO, "workflows", "*.json")))
OUTPUT_DIR = os.path.join(REPO, "output")
ANCHOR_TYPE = "VP_LoadSVGSketch"  # the frontend is ready once the pack's node definitions are registered
BOGUS_TYPE = "VP_NoSuchNodeForTheFrontendTest"


def _name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


# --- fixtures ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def object_info(comfy_server):
    info = comfy_server.object_info()
    if ANCHOR_TYPE not in info:
        pytest.fail(f"the server does not list {ANCHOR_TYPE}: the pack did not load "
                    f"(see {comfy_server.log_path}):\n{comfy_server.log()[-3000:]}")
    return info


@pytest.fixture(scope="module")
def browser_context():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = launch(pw)
        try:
            yield context
        finally:
            context.close()


def _wait_for_idle_queue(server, timeout: float = STALL_TIMEOUT):
    """Earlier tests share the server: open the frontend only when no prompt is queued or running,
    so no execution event of theirs can reach the page."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queue = server.get("/queue").json()
        if not queue.get("queue_running") and not queue.get("queue_pending"):
            return
        time.sleep(0.5)
    pytest.fail(f"the shared ComfyUI server is still busy after {timeout}s: {queue}")


@pytest.fixture(scope="module")
def frontend(comfy_server, object_info, browser_context):
    vp_types = sorted(t for t in object_info if t.startswith("VP_"))
    _wait_for_idle_queue(comfy_server)
    tab = FrontendPage(browser_context, comfy_server.url)
    tab.startup_seconds = tab.open(required_types=vp_types)
    yield tab
    tab.close()


@pytest.fixture
def clean_tab(frontend):
    """The shared tab, with any dialog or toast a previous test left closed."""
    frontend.clear_overlays()
    return frontend


# --- checks -----------------------------------------------------------------------------------------

def graph_problems(report: dict) -> list[str]:
    """Everything that says a node type is missing, and every visible dialog or toast."""
    problems = []
    for node in report["nodes"]:
        if not node["registered"]:
            problems.append(f"node {node['id']}: type {node['type']!r} is not registered in LiteGraph")
        if node["has_errors"]:
            problems.append(f"node {node['id']} ({node['type']}): has_errors is set (missing-node placeholder)")
    if report["missing"]:
        problems.append(f"frontend reported missing node types: {report['missing']}")
    problems += [f"dialog: {d['text']!r}" for d in report["dialogs"]]
    problems += [f"toast ({d['cls']}): {d['text']!r}" for d in report["toasts"]]
    return problems


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b and type(a) is type(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return a == b


def backend_values(node: dict, links: list, object_info: dict) -> dict:
    """{input name: value} of the node's widget inputs as comfy_runtime.workflow_to_prompt reads
    widgets_values (what `make demo` and the integration tests queue); linked inputs left out."""
    prompt = workflow_to_prompt({"nodes": [node], "links": links}, object_info)
    inputs = prompt.get(str(node["id"]), {}).get("inputs", {})
    return {k: v for k, v in inputs.items() if not isinstance(v, list)}


def runtime_positions(ntype: str, info: dict, count: int) -> dict:
    """{input name: index in widgets_values} that comfy_runtime assumes, found by reading a node
    whose widgets_values are `count` distinct markers."""
    node = {"id": 1, "type": ntype, "mode": 0, "inputs": [], "widgets_values": [f"#{i}" for i in range(count)]}
    values = backend_values(node, [], {ntype: info})
    return {k: int(v[1:]) for k, v in values.items() if isinstance(v, str) and v.startswith("#")}


def widget_problems(workflow: dict, report: dict, object_info: dict, prefix: str = "VP_") -> list[str]:
    """Compare the loaded widgets of every `prefix` node with the workflow JSON.

    Positional: the frontend's serialisable widgets, in order, hold widgets_values (same length).
    By name: the widget called after each backend input holds the value comfy_runtime.workflow_to_prompt
    reads for that input (what gets queued), which catches a drift between the frontend's widget order
    and the order the workflows are written and read in. None in widgets_values marks a widget input
    fed by a link; its value is not compared.
    """
    problems = []
    loaded = {str(n["id"]): n for n in report["nodes"]}
    for node in workflow["nodes"]:
        if not node["type"].startswith(prefix) or node.get("mode", 0) in (2, 4):
            continue
        where = f"node {node['id']} ({node['type']})"
        got = loaded.get(str(node["id"]))
        if got is None:
            problems.append(f"{where}: not in the loaded graph")
            continue
        values = node.get("widgets_values") or []
        positional = None if isinstance(values, dict) else values
        widgets = [w for w in got["widgets"] if w["serialize"]]
        if positional is not None:
            if len(widgets) != len(positional):
                problems.append(f"{where}: {len(positional)} widgets_values but the frontend has "
                                f"{len(widgets)} widgets {[w['name'] for w in widgets]}")
            for i, (w, v) in enumerate(zip(widgets, positional)):
                if v is not None and not _same(w["value"], v):
                    problems.append(f"{where}: widget #{i} {w['name']!r} = {w['value']!r}, JSON has {v!r}")
        # by name, through the backend's input order
        named = {w["name"]: w for w in got["widgets"]}
        for name, expected in backend_values(node, workflow.get("links", []), object_info).items():
            if name not in named:
                problems.append(f"{where}: the frontend has no widget {name!r} (has {sorted(named)})")
            elif not _same(named[name]["value"], expected):
                problems.append(f"{where}: widget {name!r} = {named[name]['value']!r}, but workflow_to_prompt "
                                f"queues {expected!r} for it")
    return problems


# --- the workflows ----------------------------------------------------------------------------------

def test_frontend_starts_clean(frontend):
    problems = frontend.console_problems(0)
    assert not problems, "console errors while the frontend started:\n" + "\n".join(problems)
    state = frontend.overlays()
    assert state == {"dialogs": [], "toasts": []}, f"dialog or toast right after start: {state}"


@pytest.mark.parametrize("path", WORKFLOWS or [pytest.param(None, marks=pytest.mark.skip("workflows/ is empty"))],
                         ids=[_name(p) for p in WORKFLOWS] or ["none"])
def test_workflow_loads_in_frontend(clean_tab, object_info, path):
    workflow = load_workflow(path)
    mark = clean_tab.mark()
    report = clean_tab.load(workflow, _name(path))
    clean_tab.screenshot(os.path.join(OUTPUT_DIR, f"frontend_{_name(path)}.png"))

    assert len(report["nodes"]) == len(workflow["nodes"]), "the loaded graph lost or gained nodes"
    assert {str(n["id"]) for n in report["nodes"]} == {str(n["id"]) for n in workflow["nodes"]}
    assert report["links"] == len(workflow.get("links", [])), "links were dropped while loading"
    failures = {
        "missing nodes, dialogs or toasts after loading": graph_problems(report),
        "VP_ widgets that do not hold the workflow's widgets_values": widget_problems(workflow, report, object_info),
        "console errors while loading": clean_tab.console_problems(mark),
    }
    if any(failures.values()):
        pytest.fail("\n".join(f"{title}:\n  " + "\n  ".join(items) for title, items in failures.items() if items),
                    pytrace=False)


def test_vp_widget_layout_matches_comfy_runtime(frontend, object_info):
    """The frontend's widget order for every VP_ node is the one workflows are written and read with."""
    types = sorted(t for t in object_info if t.startswith("VP_"))
    layout = frontend.widget_layout(types)
    drift = []
    for t in types:
        inputs = {name for name, _ in _input_specs(object_info[t])}
        frontend_pos = {name: i for i, name in enumerate(layout[t]) if name in inputs}
        runtime_pos = runtime_positions(t, object_info[t], len(layout[t]))
        if frontend_pos != runtime_pos:
            drift.append(f"{t}: widgets_values index per input\n  frontend      {frontend_pos}  (all widgets: "
                         f"{layout[t]})\n  comfy_runtime {runtime_pos}")
    if drift:
        pytest.fail("widgets_values order differs between the frontend and comfy_runtime:\n" + "\n".join(drift),
                    pytrace=False)


# --- the detectors fire -----------------------------------------------------------------------------

def _small_graph(object_info: dict) -> dict:
    """The first example workflow, or (while workflows/ is empty) a tiny graph of core nodes."""
    if WORKFLOWS:
        return load_workflow(WORKFLOWS[0])
    return {"last_node_id": 2, "last_link_id": 1, "nodes": [
        {"id": 1, "type": "EmptyImage", "pos": [50, 50], "size": [300, 150], "flags": {}, "order": 0, "mode": 0,
         "inputs": [], "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1], "slot_index": 0}],
         "properties": {}, "widgets_values": [64, 48, 1, 0]},
        {"id": 2, "type": "PreviewImage", "pos": [400, 50], "size": [300, 250], "flags": {}, "order": 1,
         "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": 1}], "outputs": [], "properties": {},
         "widgets_values": []}],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]], "groups": [], "config": {}, "extra": {}, "version": 0.4}


def test_bogus_node_type_is_detected(clean_tab, object_info):
    workflow = _small_graph(object_info)
    new_id = max(int(n["id"]) for n in workflow["nodes"]) + 1
    workflow["nodes"].append({"id": new_id, "type": BOGUS_TYPE, "pos": [40, 900], "size": [300, 120], "flags": {},
                              "order": new_id, "mode": 0, "inputs": [], "outputs": [], "properties": {},
                              "widgets_values": [1, "x"]})
    workflow["last_node_id"] = new_id
    report = clean_tab.load(workflow)
    problems = graph_problems(report)
    bogus = [n for n in report["nodes"] if n["id"] == new_id]
    assert bogus and not bogus[0]["registered"] and bogus[0]["has_errors"]
    assert report["missing"] == [BOGUS_TYPE]
    assert any("missing nodes" in d["text"].lower() and BOGUS_TYPE in d["text"] for d in report["dialogs"]), report
    assert any(BOGUS_TYPE in p and "not registered" in p for p in problems)
    assert any(p.startswith("dialog:") for p in problems)


def test_broken_link_shows_a_warning_toast(clean_tab, object_info):
    workflow = _small_graph(object_info)
    first = workflow["nodes"][0]["id"]
    workflow["links"].append([999, first, 0, first, 7, "IMAGE"])  # neither end knows this link
    report = clean_tab.load(workflow)
    assert any("p-toast-message-warn" in t["cls"] and "Workflow Validation" in t["text"] for t in report["toasts"]), report
    assert any(p.startswith("toast") for p in graph_problems(report))


def test_graph_that_fails_to_configure_shows_the_error_dialog(clean_tab, object_info):
    workflow = _small_graph(object_info)
    workflow["nodes"][0]["inputs"] = 7  # the node's configure() throws on this
    report = clean_tab.load(workflow)
    assert any("Loading aborted" in d["text"] for d in report["dialogs"]), report
    assert any(p.startswith("dialog:") for p in graph_problems(report))


def test_error_toast_is_detected(clean_tab):
    clean_tab.page.evaluate("() => app.extensionManager.toast.add({severity: 'error', summary: 'vp probe', detail: 'x'})")
    clean_tab.page.wait_for_timeout(300)
    toasts = clean_tab.overlays()["toasts"]
    assert any("p-toast-message-error" in t["cls"] and "vp probe" in t["text"] for t in toasts), toasts


def test_page_errors_and_console_errors_are_caught(clean_tab):
    mark = clean_tab.mark()
    clean_tab.page.evaluate("() => { console.error('vp probe console error'); "
                            "setTimeout(() => { throw new Error('vp probe page error') }, 0) }")
    clean_tab.page.wait_for_timeout(300)
    problems = clean_tab.console_problems(mark)
    assert any(p.startswith("pageerror:") and "vp probe page error" in p for p in problems), problems
    assert any(p.startswith("console:") and "vp probe console error" in p for p in problems), problems


def test_console_filter_is_precise():
    url = "http://127.0.0.1:8188"
    ready = time.monotonic() + 3600

    def reason(text, where="", kind="console", t=None):
        entry = ConsoleEntry(kind, text, where)
        if t is not None:
            entry.t = t
        return ignored_reason(entry, url, ready)

    csp = "Connecting to '{}' violates the following Content Security Policy directive: \"connect-src 'self'\"."
    assert reason(csp.format("https://api.comfy.org/nodes?node_id=comfy-core"))
    assert reason(csp.format("http://127.0.0.1:8188/api/x")) is None
    assert reason("Failed to load resource: net::ERR_NAME_NOT_RESOLVED", "https://example.com/a.png")
    assert reason("Failed to load resource: net::ERR_CONNECTION_REFUSED", url + "/api/prompt") is None
    e404 = "Failed to load resource: the server responded with a status of 404 (Not Found)"
    assert reason(e404, url + "/api/userdata/user.css")
    assert reason(e404, url + "/extensions/videopriors/main.js") is None
    assert reason(e404, "http://127.0.0.1:9999/api/userdata/user.css") is None
    bug = ("TypeError: Cannot read properties of undefined (reading 'id')\n    at onChange (x.js:1:1)\n"
           "    at Proxy.set (x.js:1:2)")
    assert reason(bug)
    assert ignored_reason(ConsoleEntry("console", bug), url, ready_at=time.monotonic() - 1) is None  # after start
    assert reason("TypeError: Cannot read properties of undefined (reading 'id')") is None
    assert reason("anything at all", kind="pageerror") is None


def test_widget_order_drift_is_detected(clean_tab, object_info):
    if not WORKFLOWS:
        pytest.skip("workflows/ is empty")
    workflow = load_workflow(WORKFLOWS[0])
    report = clean_tab.load(workflow)
    baseline = set(widget_problems(workflow, report, object_info))
    # the backend's input order drifts: swap two widget inputs (with different values) of a VP node
    # whose widgets are in order now
    drifted = copy.deepcopy(object_info)
    for node in workflow["nodes"]:
        if not node["type"].startswith("VP_") or any(p.startswith(f"node {node['id']} (") for p in baseline):
            continue
        info = drifted[node["type"]]
        order = info.setdefault("input_order", {k: list(v) for k, v in info["input"].items()})
        values = backend_values(node, workflow.get("links", []), {node["type"]: info})
        names = [n for n in order.get("required", []) if values.get(n) is not None]
        pair = next(((a, b) for a in names for b in names if a < b and not _same(values[a], values[b])), None)
        if pair:
            i, j = order["required"].index(pair[0]), order["required"].index(pair[1])
            order["required"][i], order["required"][j] = order["required"][j], order["required"][i]
            break
    else:
        pytest.skip("no VP node with two different widget values to swap")
    problems = set(widget_problems(workflow, report, drifted)) - baseline
    assert any(f"widget {pair[0]!r}" in p and "workflow_to_prompt queues" in p for p in problems), problems
    # and a widgets_values list of the wrong length
    short = copy.deepcopy(workflow)
    node = next(n for n in short["nodes"] if n["type"].startswith("VP_") and n.get("widgets_values"))
    node["widgets_values"] = node["widgets_values"][:-1]
    problems = set(widget_problems(short, report, object_info)) - baseline
    assert any(p.startswith(f"node {node['id']} (") and "widgets_values but the frontend has" in p for p in problems)
