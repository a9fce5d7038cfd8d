"""`make demo`: run the pack's main workflow in a real, headless ComfyUI and fetch its outputs.

Starts ComfyUI on a free loopback port with the pack linked in, converts the UI workflow to an
API prompt with /object_info, queues it through /prompt, shows the progress the server sends on
its websocket (node, step i/N, rate), downloads every output through /view into ./output/ and
stops the server.

There is no time limit unless --timeout is given (for scripts). Ctrl-C interrupts the prompt
(POST /interrupt) and stops the server; a second Ctrl-C stops it without waiting. When the run
fails the server's folder and log are kept and their path printed.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from comfy_runtime import (REPO, ComfyServer, ProgressTracker, load_workflow, output_files,  # noqa: E402
                           workflow_to_prompt)

DEFAULT_WORKFLOW = os.path.join(REPO, "workflows", "livesketch_embedded.json")
INTERRUPTED = 130  # the shell's code for a process ended by SIGINT


def say(msg: str, **kw):
    print(f"[demo] {msg}", flush=True, **kw)


def _sigterm_as_ctrl_c(_signum, _frame):
    raise KeyboardInterrupt  # `kill <pid>` takes the same clean path as Ctrl-C


def interrupt(server: ComfyServer, prompt_id: str, tracker: ProgressTracker, wait: float = 120) -> None:
    """Ask the server to stop the prompt and wait (at most `wait` s, or until a second Ctrl-C) until it has."""
    say("Ctrl-C: interrupting the prompt (Ctrl-C again to stop the server at once)")
    try:
        server.interrupt(prompt_id)
        entry = server.wait(prompt_id, timeout=wait, on_event=lambda m: _show(tracker, m))
        events = [m[0] for m in entry.get("status", {}).get("messages", [])]
        say("the prompt was interrupted" if "execution_interrupted" in events else "the prompt had already ended")
    except KeyboardInterrupt:
        say("not waiting for the prompt")
    except Exception as e:  # the server may be gone already; stopping it is all that is left
        say(f"could not interrupt cleanly ({type(e).__name__}: {e})")


def _show(tracker: ProgressTracker, message: dict) -> None:
    line = tracker.update(message)
    if line:
        say(line)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workflow", default=DEFAULT_WORKFLOW)
    ap.add_argument("--out", default=os.path.join(os.getcwd(), "output"))
    ap.add_argument("--timeout", type=float, default=None,
                    help="give up (and interrupt the prompt) after this many seconds; default: no limit")
    ap.add_argument("--iterations", type=int, default=None,
                    help="override VP_AnimateSketch's iterations (default: the workflow's)")
    ap.add_argument("--progress-every", type=float, default=2.0, help="seconds between progress lines")
    args = ap.parse_args(argv)

    os.makedirs(args.out, exist_ok=True)
    if threading_main():
        signal.signal(signal.SIGTERM, _sigterm_as_ctrl_c)
        # A shell without job control starts background commands with SIGINT ignored, and Python keeps an
        # inherited SIG_IGN: Ctrl-C (or `kill -INT`) would then never reach the clean-up below.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    t0 = time.time()
    server = ComfyServer()
    failed = True  # keeps the server's folder and log for a look afterwards
    prompt_id = None
    tracker = None
    try:
        say(f"starting ComfyUI (headless, CPU) in {server.base_dir}")
        server.start()
        say(f"ComfyUI up at {server.url} (pid {server.proc.pid}) after {time.time() - t0:.1f}s")
        prompt = workflow_to_prompt(load_workflow(args.workflow), server.object_info())
        if args.iterations is not None:
            for node in prompt.values():
                if node["class_type"] == "VP_AnimateSketch":
                    node["inputs"]["iterations"] = args.iterations
        tracker = ProgressTracker(prompt, every=args.progress_every)
        t1 = time.time()
        prompt_id = server.submit(prompt)
        say(f"queued {os.path.basename(args.workflow)} as prompt {prompt_id}")
        try:
            entry = server.wait(prompt_id, timeout=args.timeout, on_event=lambda m: _show(tracker, m))
        except TimeoutError as e:
            say(f"{e}; interrupting it")
            server.interrupt(prompt_id)
            return 1
        status = entry.get("status", {})
        if status.get("status_str") != "success":
            msgs = [m[1] for m in status.get("messages", []) if m[0] in ("execution_error", "execution_interrupted")]
            for m in msgs:
                print(f"[demo] workflow failed in {m.get('node_type')} (node {m.get('node_id')}): "
                      f"{m.get('exception_message', 'interrupted').strip()}", file=sys.stderr)
            if not msgs:
                print(f"[demo] workflow failed: {status}", file=sys.stderr)
            return 1
        say(f"{os.path.basename(args.workflow)} ran in {time.time() - t1:.1f}s")
        saved = []
        for _node, _kind, item in output_files(entry):
            if item.get("type") != "output":
                continue
            dest = os.path.join(args.out, item.get("subfolder", ""), item["filename"])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "wb") as f:
                f.write(server.fetch(item))
            saved.append(dest)
        for path in saved:
            print(path)
        say(f"done in {time.time() - t0:.1f}s (server start included)")
        if not saved:
            print("[demo] the workflow produced no output files", file=sys.stderr)
            return 1
        failed = False
        return 0
    except KeyboardInterrupt:
        failed = False
        if prompt_id is not None and server.proc is not None and server.proc.poll() is None:
            interrupt(server, prompt_id, tracker)
        return INTERRUPTED
    except Exception as e:  # reported with the server log's path, which is kept
        print(f"[demo] {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        try:
            say("stopping ComfyUI")
            server.cleanup(keep=failed)
        except KeyboardInterrupt:
            if server.proc is not None:
                server.proc.kill()
        if failed:
            print(f"[demo] server log kept: {server.log_path}", file=sys.stderr)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
