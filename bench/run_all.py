"""`make bench`: run every bench/bench_*.py; each prints its figures and writes JSON under bench/results/."""
import glob
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
os.makedirs(os.path.join(here, "results"), exist_ok=True)
failed = []
for script in sorted(glob.glob(os.path.join(here, "bench_*.py"))):
    print(f"== {os.path.basename(script)}", flush=True)
    if subprocess.call([sys.executable, script], cwd=os.path.dirname(here)) != 0:
        failed.append(os.path.basename(script))
if failed:
    sys.exit(f"benchmarks failed: {', '.join(failed)}")
