"""`make demo` (scripts/demo.py): progress lines from ComfyUI's websocket messages, Ctrl-C, failures.

The server tests run the real demo script (its own headless ComfyUI with the embedded prior); none
of them depends on how fast the machine is: they wait for the script's own output, line by line.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from comfy_env import has_runtime
from comfy_runtime import REPO, ProgressTracker

DEMO = os.path.join(REPO, "scripts", "demo.py")
PROMPT = {"1": {"class_type": "VP_LoadSVGSketch", "inputs": {}}, "5": {"class_type": "VP_AnimateSketch", "inputs": {}}}


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def progress(value, total, node="5", prompt_id="p"):
    return {"type": "progress", "data": {"value": value, "max": total, "node": node, "prompt_id": prompt_id}}


def test_progress_lines_name_the_node_and_give_step_rate_and_time_left():
    clock = Clock()
    tracker = ProgressTracker(PROMPT, every=2.0, clock=clock)
    assert tracker.update({"type": "executing", "data": {"node": "5", "prompt_id": "p"}}) == \
        "running VP_AnimateSketch (node 5)"
    assert tracker.update(progress(1, 200)) == "VP_AnimateSketch (node 5): step 1/200"  # no rate from one point
    clock.t += 10  # 40 more steps in 10 s: 4 it/s, 159 steps left
    assert tracker.update(progress(41, 200)) == "VP_AnimateSketch (node 5): step 41/200, 4.00 it/s, ~40 s left"
    clock.t += 1  # within `every` of the last line: nothing new to print...
    assert tracker.update(progress(45, 200)) is None
    assert tracker.last == {"node": "5", "value": 45.0, "max": 200.0, "rate": 44 / 11}
    clock.t += 0.5  # ...except the node's last step
    assert tracker.update(progress(200, 200)).startswith("VP_AnimateSketch (node 5): step 200/200, ")


def test_progress_lines_for_slow_steps_errors_and_interrupts():
    clock = Clock()
    tracker = ProgressTracker(PROMPT, every=0, clock=clock)
    tracker.update(progress(1, 10))
    clock.t += 12  # 3 steps in 12 s
    assert tracker.update(progress(4, 10)) == "VP_AnimateSketch (node 5): step 4/10, 4.00 s/it, ~24 s left"
    assert tracker.update({"type": "execution_interrupted", "data": {"node_id": "5", "prompt_id": "p"}}) == \
        "interrupted in VP_AnimateSketch (node 5)"
    assert tracker.update({"type": "execution_error", "data": {
        "node_id": "1", "prompt_id": "p", "exception_message": "VP_LoadSVGSketch: not an SVG\n"}}) == \
        "error in VP_LoadSVGSketch (node 1): VP_LoadSVGSketch: not an SVG"
    assert tracker.update({"type": "execution_cached", "data": {"nodes": ["1"], "prompt_id": "p"}}) == \
        "cached: VP_LoadSVGSketch (node 1)"
    for quiet in ({"type": "status", "data": {}}, {"type": "executing", "data": {"node": None}},
                  {"type": "progress_state", "data": {"nodes": {}}}):
        assert tracker.update(quiet) is None


def _start_demo(*args) -> subprocess.Popen:
    if not has_runtime():
        pytest.fail("no ComfyUI runtime: run the tests with `make test` (or set COMFYUI_PATH)")
    return subprocess.Popen([sys.executable, DEMO, *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.server
def test_ctrl_c_interrupts_the_prompt_and_stops_the_server(tmp_path):
    proc = _start_demo("--iterations", "100000", "--progress-every", "0", "--out", str(tmp_path / "out"))
    lines, server_pid, base_dir = [], None, None
    try:
        for line in proc.stdout:  # read until VP_AnimateSketch reports its second step, then press Ctrl-C
            lines.append(line)
            if m := re.search(r"\(pid (\d+)\)", line):
                server_pid = int(m.group(1))
            if m := re.search(r"starting ComfyUI .* in (\S+)", line):
                base_dir = m.group(1)
            if re.search(r"VP_AnimateSketch \(node \d+\): step [2-9]", line):
                proc.send_signal(signal.SIGINT)
                break
        rest = proc.stdout.read()
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines) + rest
    assert code == 130, out
    assert "Ctrl-C: interrupting the prompt" in out and "interrupted in VP_AnimateSketch" in out, out
    assert "the prompt was interrupted" in out, out
    assert server_pid is not None and _gone(server_pid), out  # the demo stopped its server
    assert base_dir and not os.path.exists(base_dir), out  # nothing failed: nothing kept
    assert not os.path.exists(tmp_path / "out" / "VideoPriors"), "an interrupted run saved outputs"


@pytest.mark.server
def test_failed_run_keeps_the_server_log_and_prints_its_path(tmp_path):
    with open(os.path.join(REPO, "workflows", "livesketch_embedded.json"), encoding="utf-8") as f:
        workflow = json.load(f)
    loader = next(n for n in workflow["nodes"] if n["type"] == "VP_LoadSVGSketch")
    loader["widgets_values"][6] = "this is not an SVG document"  # svg_text: fails when the node runs
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(workflow))
    proc = _start_demo("--workflow", str(path), "--out", str(tmp_path / "out"))
    out = proc.communicate()[0]
    assert proc.returncode == 1, out
    assert re.search(r"workflow failed in VP_LoadSVGSketch \(node \d+\): VP_LoadSVGSketch: ", out), out
    kept = re.search(r"server log kept: (\S+)", out)
    assert kept, out
    log = kept.group(1)
    try:
        with open(log, errors="replace") as f:
            text = f.read()
        assert "VP_LoadSVGSketch" in text  # ComfyUI's own account of the failure is in it
    finally:
        shutil.rmtree(os.path.dirname(log), ignore_errors=True)
