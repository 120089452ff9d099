#!/usr/bin/env bash
# CI: what ships is what is tested. Build the wheel (not the editable checkout), install it into a
# fresh environment with the serving extra, check it holds every package of the source tree, run
# the command line's help, and answer requests (similar, explained, the map, the web page) from a demo
# served by the installed wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

if [ ! -x .venv/bin/cmar ]; then  # the checkout's environment, as the README installs it (torch, to build a demo)
    python3 -m venv .venv && .venv/bin/pip install --quiet -c constraints.txt -e '.[dev]'
fi
mkdir "$work/src"  # built from a copy of the tracked files, so the checkout gets no build/ folder
git ls-files -z | xargs -0 cp --parents -t "$work/src" 2>/dev/null || true
.venv/bin/pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$work/src"
wheel=$(ls "$work"/dist/cmar-*.whl)
python3 - "$wheel" <<'PY'
import sys, zipfile, pathlib
shipped = {str(pathlib.PurePath(n).parent) for n in zipfile.ZipFile(sys.argv[1]).namelist() if n.endswith("/__init__.py")}
source = {str(p.parent) for p in pathlib.Path(".").rglob("__init__.py") if not {"tests", ".venv", "build"} & set(p.parts)}
# (run in the checkout: every package of the source tree must be in the wheel)
missing = sorted(source - shipped)
print(f"wheel: {len(shipped)} packages; missing from the wheel: {missing or 'none'}")
sys.exit(1 if missing else 0)
PY

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet -c constraints.txt "$wheel[serve]"
cd "$work"  # away from the checkout: only the installed wheel can be imported
for words in "" "bench" "check" "check faults" "serve"; do
    "$work/venv/bin/cmar" $words --help > /dev/null
done
echo "wheel: cmar --help, bench --help, check --help, check faults --help, serve --help: ok"

# A demo built by the checkout's environment (it has torch), served by the wheel's (it has not).
"$OLDPWD/.venv/bin/cmar" -q run --workdir "$work/demo" --no-serve --epochs 1
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CMAR_LOG_LEVEL=warning "$work/venv/bin/cmar" -q serve --model "$work/demo/model" --index "$work/demo/index" \
    --map "$work/demo/map" --port "$port" &
server=$!
python3 - "$port" <<'PY'
import json, sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
for _ in range(240):
    try:
        ready = json.load(urllib.request.urlopen(f"{base}/readyz", timeout=2))
        break
    except OSError:
        time.sleep(0.5)
else:
    sys.exit("wheel: the served demo never became ready")
body = json.load(urllib.request.urlopen(f"{base}/artists/a0000001/similar?k=3", timeout=10))
assert len(body["results"]) == 3, body
print("wheel: served", body["artist_id"], "->", [r["artist_id"] for r in body["results"]], f"of {ready['n_artists']} artists")
for page in ("/ui/", "/ui/static/app.js", "/ui/static/app.css"):  # the web page's assets ship in the wheel
    with urllib.request.urlopen(base + page, timeout=10) as r:
        assert r.status == 200 and len(r.read()) > 500, page
explained = json.load(urllib.request.urlopen(f"{base}/artists/a0000001/similar?k=1&explain=true", timeout=10))
assert explained["results"][0]["explanation"]["pairs"], explained
points = json.load(urllib.request.urlopen(f"{base}/map?limit=1", timeout=10))
assert points["total"] == ready["n_artists"], points
print("wheel: the web page, an explanation and the map: ok")
PY
echo "wheel: smoke test passed"
