"""The demo (and the test suite) beside other CPU-bound work: quiet vs N busy processes, old vs new threading.

"Busy" = N extra processes spinning `while True: pass` (default 2, as many as this machine's 2 cores)
for the whole run. "old" = torch's OpenMP threads with libgomp's default wait policy (they spin for
GOMP_SPINCOUNT = 300,000 iterations after each parallel region), "new" = OMP_WAIT_POLICY=PASSIVE
(they sleep at once), which `make`, scripts/comfy_runtime.py and tests/conftest.py now set.
Each configuration runs in a fresh process (libgomp reads the variable when torch is imported);
configurations alternate within every round (the order reversed every other round) so that the
machine's other load falls on all of them alike; figures are medians over rounds, with the
1-minute load average sampled during each run.

Parts (default: loop and demo; writes bench/results/busy.json):
  loop   the LiveSketch loop of the demo graph in-process (workflows/livesketch_embedded.json's settings:
         bird.svg, embedded prior, 8 frames, fused, 64 px), --loop-iters iterations per run;
         old/new x quiet/busy, plus new with one torch thread.
  demo   the whole demo graph in a real headless ComfyUI (scripts/comfy_runtime.ComfyServer):
         server start, the prompt, total; new settings at the workflow's iteration count, old
         settings at --old-demo-iterations (their busy runs take ~10 s per iteration).
  suite  (--suite, not in `make bench`) `make test`'s pytest command with N busy processes beside it;
         writes bench/results/busy_suite.json. Arguments after `--` go to pytest (default: tests).

  python bench/bench_busy.py                      # loop + demo
  python bench/bench_busy.py --parts loop --rounds 5
  python bench/bench_busy.py --suite              # ~20 min or more
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "scripts")]
RESULTS = os.path.join(REPO, "bench", "results")
WORKFLOW = os.path.join(REPO, "workflows", "livesketch_embedded.json")
SETTINGS = {"old": {"OMP_WAIT_POLICY": None}, "new": {"OMP_WAIT_POLICY": "PASSIVE"}}
TARGET_RATIO = 3.0


# --- the machine's load ---------------------------------------------------------------------------

@contextlib.contextmanager
def busy_processes(n: int):
    """n CPU-bound processes for the duration of the block (stopped by their pids afterwards)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5 if n else 0)
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


class LoadSampler:
    """The 1-minute load average every few seconds while a run lasts."""

    def __init__(self, every: float = 5.0):
        self.samples = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every):
        while not self._stop.wait(every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict:
        return {"load1_start": round(self.samples[0], 2), "load1_end": round(self.samples[-1], 2),
                "load1_mean": round(statistics.fmean(self.samples), 2), "load1_max": round(max(self.samples), 2)}


def child_env(setting: str, threads: int | None = None) -> dict:
    env = dict(os.environ)
    for key, value in SETTINGS[setting].items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env.pop("VP_BENCH_THREADS", None)
    if threads:
        env["VP_BENCH_THREADS"] = str(threads)
    return env


def omp_display(setting: str) -> dict:
    """What libgomp itself says it read (OMP_DISPLAY_ENV=VERBOSE at `import torch`) under a setting."""
    env = child_env(setting)
    env["OMP_DISPLAY_ENV"] = "VERBOSE"
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.__config__.parallel_info())"],
                         env=env, capture_output=True, text=True, check=True)
    found = {}
    for line in out.stderr.splitlines():
        key, _, value = line.strip().partition(" = ")
        if key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS"):
            found[key] = value.strip("'")
    backend = [l.strip() for l in out.stdout.splitlines() if "parallel backend" in l or "get_num_threads" in l]
    return {"libgomp": found, "torch": backend}


# --- part "loop": the demo graph's LiveSketch loop in-process ------------------------------------

def demo_settings() -> dict:
    """The LiveSketch settings of the demo workflow, read from its widgets (in the nodes' input order)."""
    with open(WORKFLOW, encoding="utf-8") as f:
        nodes = {n["type"]: n.get("widgets_values", []) for n in json.load(f)["nodes"]}
    svg, canvas, fit, stroke, black, max_paths = nodes["VP_LoadSVGSketch"][:6]
    m = nodes["VP_SketchMotionModel"]
    assert len(m) == 14, f"VP_SketchMotionModel has {len(m)} widgets: read the new ones below"
    g = nodes["VP_SDSGuidance"]
    a = nodes["VP_AnimateSketch"]
    return {"svg": svg, "canvas": canvas, "fit": fit, "stroke_width": stroke, "force_black": black,
            "max_paths": max_paths, "prior": nodes["VP_LoadVideoPrior"][0],
            "model": dict(num_frames=m[0], hidden=m[1], dropout=m[2], lambda_t=m[3], lambda_r=m[4], lambda_sh=m[5],
                          lambda_s=m[6], local_lr=m[7], global_lr=m[8], use_local=m[9], use_global=m[10],
                          anchor=m[11], shape_weight=m[12], smooth_weight=m[13]),  # the inputs appended later
            "sds": dict(prompt=g[0], negative_prompt=g[1], guidance_local=g[2], guidance_global=g[3], t_min=g[4],
                        t_max=g[5], augment=g[6], perspective_distortion=g[7], crop_scale=(g[8], 1.0)),
            "animate": dict(iterations=a[0], seed=a[1], fused=a[3], fps=a[4], render_size=a[5])}


def loop_child(iters: int) -> dict:
    import torch

    from pipelines.embedded.prior import load_embedded_prior
    from pipelines.livesketch import AnimateConfig, MotionModelConfig, SDSConfig, animate_sketch
    from pipelines.svg import load_svg_sketch

    if os.environ.get("VP_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["VP_BENCH_THREADS"]))
    s = demo_settings()
    assert s["prior"] == "embedded" and s["svg"].startswith("examples/"), s
    with open(os.path.join(REPO, "pipelines", "assets", "sketches", s["svg"][len("examples/"):]), "rb") as f:
        sketch = load_svg_sketch(f.read(), canvas_size=s["canvas"], fit=s["fit"], stroke_width=s["stroke_width"],
                                 force_black=s["force_black"], max_paths=s["max_paths"]).sketch
    prior = load_embedded_prior()
    sds = SDSConfig(**s["sds"])
    embeds = prior.encode_prompt(sds.prompt, sds.negative_prompt)
    model_cfg = MotionModelConfig(**s["model"])
    cfg = AnimateConfig(**{**s["animate"], "iterations": 2})
    animate_sketch(sketch, prior, embeds, model_cfg, sds, cfg)  # warm-up
    cfg.iterations = iters
    w0, c0 = time.perf_counter(), time.process_time()
    res = animate_sketch(sketch, prior, embeds, model_cfg, sds, cfg)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    split = {k: round(v / iters, 4) for k, v in res.times.as_dict().items() if k not in ("passes", "iterations")}
    return {"iterations": iters, "threads": torch.get_num_threads(), "seconds_per_iteration": wall / iters,
            "cpu_seconds_per_iteration": cpu / iters, "split_per_iteration": split}


def run_loop_case(setting: str, busy: int, iters: int, threads: int | None) -> dict:
    with busy_processes(busy), LoadSampler() as load:
        out = subprocess.run([sys.executable, __file__, "--loop-child", str(iters)], env=child_env(setting, threads),
                             capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(f"loop child failed ({setting}, busy {busy}):\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update(load.summary())
    return res


# --- part "demo": the whole graph in a real ComfyUI -----------------------------------------------

def run_demo_case(setting: str, busy: int, iterations: int | None) -> dict:
    from comfy_runtime import ComfyServer, load_workflow, output_files, workflow_to_prompt

    with busy_processes(busy), LoadSampler() as load:
        t0 = time.perf_counter()
        server = ComfyServer(env=SETTINGS[setting])
        try:
            server.start()
            t1 = time.perf_counter()
            prompt = workflow_to_prompt(load_workflow(WORKFLOW), server.object_info())
            for node in prompt.values():
                if node["class_type"] == "VP_AnimateSketch" and iterations is not None:
                    node["inputs"]["iterations"] = iterations
            its = [n["inputs"]["iterations"] for n in prompt.values() if n["class_type"] == "VP_AnimateSketch"][0]
            entry = server.run(prompt, timeout=None)
            t2 = time.perf_counter()
            ok = entry.get("status", {}).get("status_str") == "success"
            for _node, _kind, item in output_files(entry):  # as the demo does: fetch every output
                if item.get("type") == "output":
                    server.fetch(item)
            t3 = time.perf_counter()
            if not ok:
                raise RuntimeError(f"demo graph failed ({setting}, busy {busy}); server log {server.log_path}")
        finally:
            server.cleanup()
    return {"iterations": its, "server_start_s": t1 - t0, "prompt_s": t2 - t1, "total_s": t3 - t0,
            "prompt_seconds_per_iteration": (t2 - t1) / its, **load.summary()}


# --- rounds, medians, report ----------------------------------------------------------------------

def run_rounds(cases: list[tuple[str, callable]], rounds: int) -> dict:
    """Run every case once per round, alternating the order; {name: [result per round]}."""
    runs: dict = {name: [] for name, _ in cases}
    for r in range(rounds):
        order = cases if r % 2 == 0 else cases[::-1]
        for name, fn in order:
            res = fn()
            runs[name].append(res)
            print(f"  round {r + 1}/{rounds} {name:22s} {describe(res)}", flush=True)
    return runs


def describe(res: dict) -> str:
    if "seconds_per_iteration" in res:
        main = f"{res['seconds_per_iteration']:.3f} s/iter (cpu {res['cpu_seconds_per_iteration']:.3f})"
    else:
        main = (f"total {res['total_s']:.1f} s (start {res['server_start_s']:.1f}, prompt {res['prompt_s']:.1f} "
                f"for {res['iterations']} iterations)")
    return f"{main}  load1 {res['load1_mean']:.1f} (max {res['load1_max']:.1f})"


def medians(runs: dict, keys: list[str]) -> dict:
    out = {}
    for name, results in runs.items():
        out[name] = {k: round(statistics.median(r[k] for r in results), 4) for k in keys}
        out[name]["load1_mean"] = round(statistics.fmean(r["load1_mean"] for r in results), 2)
        out[name]["runs"] = len(results)
    return out


def ratios(med: dict, key: str, pairs: list[tuple[str, str, str]]) -> dict:
    return {label: round(med[busy][key] / med[quiet][key], 2) for label, quiet, busy in pairs
            if quiet in med and busy in med}


def part_loop(args) -> dict:
    b = args.busy
    cases = [
        ("new quiet", lambda: run_loop_case("new", 0, args.loop_iters, None)),
        (f"new busy{b}", lambda: run_loop_case("new", b, args.loop_iters, None)),
        ("old quiet", lambda: run_loop_case("old", 0, args.loop_iters, None)),
        (f"old busy{b}", lambda: run_loop_case("old", b, args.loop_iters, None)),
        ("new 1-thread quiet", lambda: run_loop_case("new", 0, args.loop_iters, 1)),
        (f"new 1-thread busy{b}", lambda: run_loop_case("new", b, args.loop_iters, 1)),
    ]
    print(f"[loop] LiveSketch loop of the demo graph, {args.loop_iters} iterations per run, {args.rounds} rounds")
    runs = run_rounds(cases, args.rounds)
    med = medians(runs, ["seconds_per_iteration", "cpu_seconds_per_iteration"])
    rat = ratios(med, "seconds_per_iteration", [("new", "new quiet", f"new busy{b}"),
                                                ("old", "old quiet", f"old busy{b}"),
                                                ("new 1-thread", "new 1-thread quiet", f"new 1-thread busy{b}")])
    for name, m in med.items():
        print(f"[loop] median {name:22s} {m['seconds_per_iteration']:.3f} s/iter, "
              f"cpu {m['cpu_seconds_per_iteration']:.3f} s/iter (load1 mean {m['load1_mean']:.1f})")
    print(f"[loop] busy / quiet: {rat}")
    return {"iterations_per_run": args.loop_iters, "rounds": args.rounds, "medians": med, "busy_over_quiet": rat,
            "runs": runs}


def part_demo(args) -> dict:
    b = args.busy
    cases = [("new quiet", lambda: run_demo_case("new", 0, args.demo_iterations)),
             (f"new busy{b}", lambda: run_demo_case("new", b, args.demo_iterations))]
    if args.old_demo_iterations:
        cases += [("old quiet", lambda: run_demo_case("old", 0, args.old_demo_iterations)),
                  (f"old busy{b}", lambda: run_demo_case("old", b, args.old_demo_iterations))]
    print(f"[demo] the demo graph in ComfyUI, {args.demo_rounds} rounds")
    runs = run_rounds(cases, args.demo_rounds)
    med = medians(runs, ["total_s", "server_start_s", "prompt_s", "prompt_seconds_per_iteration", "iterations"])
    pairs = [("new", "new quiet", f"new busy{b}"), ("old", "old quiet", f"old busy{b}")]
    rat = {"total": ratios(med, "total_s", pairs), "prompt": ratios(med, "prompt_s", pairs)}
    for name, m in med.items():
        print(f"[demo] median {name:12s} total {m['total_s']:.1f} s (server start {m['server_start_s']:.1f} s, prompt "
              f"{m['prompt_s']:.1f} s for {m['iterations']:.0f} iterations = {m['prompt_seconds_per_iteration']:.3f} "
              f"s/iter) (load1 mean {m['load1_mean']:.1f})")
    verdict = rat["total"].get("new")
    print(f"[demo] busy / quiet: {rat} (target: new total <= {TARGET_RATIO}x"
          f"{'' if verdict is None else ', met' if verdict <= TARGET_RATIO else ', NOT met'})")
    return {"rounds": args.demo_rounds, "medians": med, "busy_over_quiet": rat, "target_total_ratio": TARGET_RATIO,
            "runs": runs}


def suite(args, pytest_args: list[str]) -> None:
    """`make test`'s pytest command beside args.busy CPU-bound processes; wall time and outcome."""
    setting = "old" if args.old else "new"
    cmd = [sys.executable, "-m", "pytest", "-q", "--timeout=900", *(pytest_args or ["tests"])]
    print(f"[suite] {' '.join(cmd)} with {args.busy} busy processes, {setting} settings", flush=True)
    with busy_processes(args.busy), LoadSampler(every=15) as load:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=child_env(setting), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
        wall = time.perf_counter() - t0
    tail = proc.stdout.strip().splitlines()[-25:]
    print("\n".join(tail))
    res = {"command": cmd, "settings": setting, "busy_processes": args.busy, "wall_s": round(wall, 1),
           "returncode": proc.returncode, "summary": tail[-1] if tail else "", "target_wall_s": 20 * 60,
           **load.summary(), "machine": machine()}
    print(f"[suite] {wall / 60:.1f} min, exit {proc.returncode} (target <= 20 min); load1 mean "
          f"{res['load1_mean']:.1f}, max {res['load1_max']:.1f}")
    write("busy_suite.json", res)


def machine() -> dict:
    return {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def write(name: str, data: dict) -> None:
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name)
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
    print("wrote", path)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args = []
    if "--" in argv:
        pytest_args = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="loop,demo", help="comma-separated: loop, demo")
    ap.add_argument("--busy", type=int, default=2, help="CPU-bound processes beside the busy runs")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the loop part")
    ap.add_argument("--loop-iters", type=int, default=8)
    ap.add_argument("--demo-rounds", type=int, default=2)
    ap.add_argument("--demo-iterations", type=int, default=None, help="default: the workflow's")
    ap.add_argument("--old-demo-iterations", type=int, default=20, help="0 skips the old settings in the demo part")
    ap.add_argument("--suite", action="store_true", help="run make test's pytest command beside busy processes")
    ap.add_argument("--old", action="store_true", help="with --suite: libgomp's default wait policy")
    ap.add_argument("--loop-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.loop_child:
        print(json.dumps(loop_child(args.loop_child)))
        return
    if args.suite:
        suite(args, pytest_args)
        return
    import torch

    results = {"machine": {**machine(), "torch": torch.__version__}, "busy_processes": args.busy,
               "libgomp": {s: omp_display(s) for s in SETTINGS}, "settings": {k: {e: v for e, v in s.items()}
                                                                              for k, s in SETTINGS.items()}}
    print("[libgomp]", json.dumps(results["libgomp"]))
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if "loop" in parts:
        results["loop"] = part_loop(args)
    if "demo" in parts:
        results["demo"] = part_demo(args)
    write("busy.json", results)


if __name__ == "__main__":
    main()
