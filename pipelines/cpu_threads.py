"""CPU threading advice: torch's OpenMP threads and machines whose cores are shared.

torch's wheels run intra-op parallelism on GNU libgomp. By default its idle threads spin for
GOMP_SPINCOUNT = 300,000 iterations after every parallel region before they sleep; on a machine
whose cores are busy with other processes those spins take the time slices that the thread
doing the work needs, and the many small operations of a LiveSketch iteration each pay for it
(beside two CPU-bound processes one iteration of the demo's loop took 19.7 s spinning, 0.71 s
sleeping; bench/bench_busy.py). OMP_WAIT_POLICY=PASSIVE makes them sleep at once (spin count 0).
libgomp reads the variable once, when it is loaded (`import torch`), so it must be in the
environment before the process imports torch: `make`, scripts/comfy_runtime.py and the tests
set it; a ComfyUI started by hand needs it on its command line.
"""
from __future__ import annotations

import os

WAIT_POLICY_VAR = "OMP_WAIT_POLICY"
RECOMMENDED = "PASSIVE"


def uses_openmp() -> bool:
    import torch

    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


def wait_policy_warning(environ=None) -> str | None:
    """A sentence for the log when torch's OpenMP threads will spin at barriers, else None.

    Judged from the environment: inside ComfyUI torch was imported at start-up, so the value the
    process started with is the one libgomp read.
    """
    environ = os.environ if environ is None else environ
    value = environ.get(WAIT_POLICY_VAR, "")
    if value.strip().upper() == RECOMMENDED or not uses_openmp():
        return None
    now = f"{WAIT_POLICY_VAR}={value}" if value else f"{WAIT_POLICY_VAR} is not set"
    return (f"{now}: torch's OpenMP threads spin while they wait, so on a CPU shared with other busy "
            f"processes LiveSketch and sampling can run 10-20x slower. Start ComfyUI with "
            f"{WAIT_POLICY_VAR}={RECOMMENDED} in its environment (e.g. `{WAIT_POLICY_VAR}={RECOMMENDED} "
            f"python main.py --cpu`); it cannot be changed once torch is loaded.")
