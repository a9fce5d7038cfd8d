"""Running one benchmark case in its own process (a clean peak RSS per case), shared by the bench scripts."""
from __future__ import annotations

import json
import subprocess
import sys


def run_isolated(script: str, args: list[str], label: dict, timeout: float, cwd: str) -> dict:
    """`python script *args` -> the JSON object its last stdout line holds; on failure `label` plus the last line
    of stderr ("error"), on timeout `label` plus "timeout_s". The result is printed as it arrives."""
    try:
        p = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                           check=False)
        if p.returncode:
            case = {**label, "error": p.stderr.strip().splitlines()[-1:]}
        else:
            case = json.loads(p.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        case = {**label, "timeout_s": timeout}
    print(json.dumps(case), flush=True)
    return case
