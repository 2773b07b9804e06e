#!/usr/bin/env bash
# The GPU path in one go, within 10 minutes on one GPU:
#   1. ResNet-50 bf16 channels-last images/s and peak memory, the engine against a bare torchvision loop on
#      the same in-memory images (benchmarks/gpu_throughput.py -> benchmarks/results/gpu_throughput.json);
#   2. the CUDA tests (tests/test_cuda.py: every method in fp32 / bf16 / fp16, channels-last, two processes);
#   3. one full-size readout-reweight run (colored-digits at its default size, 10 epochs).
# Writes benchmarks/results/gpu_check.json (commit, device, each step's outcome and seconds). Each step has
# its own time limit, so one that hangs cannot eat the others' time.
#   bash benchmarks/gpu_check.sh     # from anywhere; PYTHON=path/to/python chooses the interpreter,
#                                    # CUDA_TEST_PROCESSES the pytest-xdist processes (default 8)
# KEEP=DIR keeps the steps' logs in DIR (default: a temporary folder); COMMIT=SHA names the commit of a
# copy without its git folder.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=benchmarks/results
WORK=${KEEP:-$(mktemp -d)}
mkdir -p "$WORK"
mkdir -p "$OUT"
export CI=true  # no progress bars

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device is visible to $PY; nothing was checked" >&2
  exit 1
fi

step() {  # step NAME LIMIT_S COMMAND...: run it under its limit, log to $WORK/NAME.log, record rc and seconds
  local name=$1 limit=$2 start rc
  shift 2
  echo "gpu_check: $name (limit ${limit} s)" >&2
  start=$(date +%s)
  timeout "$limit" "$@" > "$WORK/$name.log" 2>&1
  rc=$?
  echo "$rc $(( $(date +%s) - start ))" > "$WORK/$name.status"
  tail -n 3 "$WORK/$name.log" >&2
}

# the measurement first, while nothing else runs; then the tests, which pytest-xdist (where installed)
# spreads over processes that share the GPU
step throughput 150 "$PY" -m benchmarks.gpu_throughput --out "$OUT/gpu_throughput.json"
XDIST=$("$PY" -c "import xdist" 2>/dev/null && echo "-n ${CUDA_TEST_PROCESSES:-8}")
step cuda_tests 240 "$PY" -m pytest -q -p no:cacheprovider $XDIST tests/test_cuda.py --junitxml "$WORK/cuda_tests.xml"
step readout_reweight 150 "$PY" -m earlyreadout train --method readout-reweight --data colored-digits \
  --device cuda --seed 0 --out "$WORK/readout-reweight"

"$PY" - "$WORK" "$OUT" <<'EOF'
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

work, out = Path(sys.argv[1]), Path(sys.argv[2])


def status(name):
    rc, seconds = (work / f"{name}.status").read_text().split()
    return {"rc": int(rc), "timed_out": rc == "124", "seconds": int(seconds)}


cuda = status("cuda_tests")
if (work / "cuda_tests.xml").exists():
    root = ET.parse(work / "cuda_tests.xml").getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter("testcase")
              if c.find("failure") is not None or c.find("error") is not None]
    cuda.update(counts, failed=failed)
rr = status("readout_reweight")
metrics = work / "readout-reweight" / "metrics.json"
if metrics.exists():
    m = json.loads(metrics.read_text())
    rr.update({split: {k: m[split][k] for k in ("worst_group_accuracy", "average_accuracy")} for split in ("val", "test")},
              train_time_s=m.get("train_time_s"), best_epoch=m.get("best_epoch"))
throughput = status("throughput")
if (out / "gpu_throughput.json").exists() and throughput["rc"] == 0:
    t = json.loads((out / "gpu_throughput.json").read_text())
    throughput.update({k: t[k] for k in ("images_per_s", "engine_over_bare", "peak_gb", "settings")})
result = {
    "benchmark": "gpu_check",
    "commit": os.environ.get("COMMIT") or subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                                                           text=True).stdout.strip(),
    "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
    "cuda_tests": cuda, "throughput": throughput, "readout_reweight": rr,
}
(out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps(result, indent=2))
ok = cuda["rc"] == 0 and throughput["rc"] == 0 and rr["rc"] == 0
sys.exit(0 if ok else 1)
EOF
