"""`make demo`: run the pack's main workflow in a real, headless ComfyUI and fetch its outputs.

Starts ComfyUI on a free loopback port with the pack linked in, converts the UI
workflow to an API prompt with /object_info, queues it through /prompt, waits on
/history, downloads every output through /view into ./output/ and stops the server.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from comfy_runtime import REPO, ComfyServer, load_workflow, output_files, workflow_to_prompt  # noqa: E402

DEFAULT_WORKFLOW = os.path.join(REPO, "workflows", "livesketch_embedded.json")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workflow", default=DEFAULT_WORKFLOW)
    ap.add_argument("--out", default=os.path.join(os.getcwd(), "output"))
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args(argv)

    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    server = ComfyServer()
    try:
        print(f"[demo] starting ComfyUI (headless, CPU) in {server.base_dir}", flush=True)
        server.start()
        print(f"[demo] ComfyUI up at {server.url} after {time.time() - t0:.1f}s", flush=True)
        prompt = workflow_to_prompt(load_workflow(args.workflow), server.object_info())
        t1 = time.time()
        entry = server.run(prompt, timeout=args.timeout)
        status = entry.get("status", {})
        if status.get("status_str") != "success":
            msgs = [m for m in status.get("messages", []) if m[0] == "execution_error"]
            print(f"[demo] workflow failed: {msgs}", file=sys.stderr)
            return 1
        print(f"[demo] {os.path.basename(args.workflow)} ran in {time.time() - t1:.1f}s", flush=True)
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
        print(f"[demo] done in {time.time() - t0:.1f}s (server start included)", flush=True)
        if not saved:
            print("[demo] the workflow produced no output files", file=sys.stderr)
            return 1
        return 0
    finally:
        server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
