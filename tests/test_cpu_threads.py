"""torch's OpenMP threads must sleep, not spin, when they wait (OMP_WAIT_POLICY=PASSIVE), in every
process we start: the tests, the ComfyUI server, and a warning for a ComfyUI started without it.
Speed itself is measured by bench/bench_busy.py, not here."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipelines.cpu_threads import uses_openmp, wait_policy_warning


def libgomp_settings(env: dict) -> dict:
    """What libgomp says it read from `env` when torch loaded it (OMP_DISPLAY_ENV=VERBOSE)."""
    env = {**env, "OMP_DISPLAY_ENV": "VERBOSE"}
    out = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True, check=True)
    found = {}
    for line in out.stderr.splitlines():
        key, _, value = line.strip().partition(" = ")
        if value:
            found[key] = value.strip("'")
    return found


def test_passive_policy_reaches_torchs_libgomp():
    assert uses_openmp()  # the pinned torch wheels run intra-op parallelism on GNU libgomp
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    passive = libgomp_settings({**base, "OMP_WAIT_POLICY": "PASSIVE"})
    default = libgomp_settings(base)
    assert passive["GOMP_SPINCOUNT"] == "0", passive  # threads sleep at once
    assert int(default["GOMP_SPINCOUNT"]) > 0, default  # libgomp's default spins before sleeping


def test_the_test_process_got_the_policy_before_torch_loaded():
    assert os.environ.get("OMP_WAIT_POLICY", "").upper() in ("PASSIVE", "ACTIVE")  # conftest sets a default
    # a child started by a test inherits it, as the suite's subprocesses and servers do
    assert libgomp_settings(dict(os.environ))["GOMP_SPINCOUNT"] == (
        "0" if os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE" else "30000000000")


def test_server_process_runs_with_the_passive_policy(comfy_server):
    with open(f"/proc/{comfy_server.proc.pid}/environ", "rb") as f:
        env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    assert env.get(b"OMP_WAIT_POLICY") == os.environ["OMP_WAIT_POLICY"].encode()


def test_warning_when_comfyui_started_without_the_policy():
    assert wait_policy_warning({"OMP_WAIT_POLICY": "PASSIVE"}) is None
    assert wait_policy_warning({"OMP_WAIT_POLICY": "passive"}) is None
    for env in ({}, {"OMP_WAIT_POLICY": "ACTIVE"}):
        message = wait_policy_warning(env)
        assert message and "OMP_WAIT_POLICY=PASSIVE python main.py" in message
        assert ("is not set" in message) == (env == {})


@pytest.mark.server
def test_pack_warns_when_comfyui_starts_without_the_policy(tmp_path):
    from comfy_runtime import ComfyServer

    server = ComfyServer(str(tmp_path / "base"), env={"OMP_WAIT_POLICY": None})
    server.start()
    try:
        log = server.log()
    finally:
        server.stop()
    assert "VideoPriors: OMP_WAIT_POLICY is not set: torch's OpenMP threads spin" in log, log[-3000:]
    assert "OMP_WAIT_POLICY=PASSIVE python main.py --cpu" in log
