#!/usr/bin/env bash
# The GPU check, one command on the device machine, from the repository root, with .devdata carried
# (bench/make_device_data.py writes it here; the device has no ../shared and no network):
#
#   bash bench/gpu_check.sh
#
# Prints the card and versions, runs the GPU tests (tests/train/test_gpu.py), then the benchmark (bench/gpu.py),
# and ends by about 330 s. Everything is also written to $OUT (set by the device tool; else /tmp/out):
# nvidia-smi.txt, versions.txt, pytest.log, gpu-bench.md, gpu-bench.json, gpu-bench.stderr.log.
# Dry run on a CPU: RESLAB_TEST_DEVICE=cpu PYTHON=.venv/bin/python GPU_BENCH_ARGS="--quick --threads 1 ..." \
#   bash bench/gpu_check.sh
set -x
START=$(date +%s)
END_BY=${END_BY:-320}  # seconds after the start by which the benchmark must have stopped
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
PY=${PYTHON:-python}
DEVICE=${RESLAB_TEST_DEVICE:-cuda}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export RESLAB_CACHE=${RESLAB_CACHE:-/tmp/reslab-cache}

nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt"
"$PY" - <<'EOF' 2>&1 | tee "$OUT/versions.txt"
import platform, sys
import numpy, torch, torchvision
print("python", sys.version.split()[0], platform.platform())
print("torch", torch.__version__, "torchvision", torchvision.__version__, "numpy", numpy.__version__,
      "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
try:
    import triton
    print("triton", triton.__version__)
except ImportError:
    print("triton absent (torch.compile on CUDA needs it)")
print("cuda available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(p.name, f"{p.total_memory / 2**30:.1f} GiB", f"sm_{p.major}{p.minor}", p.multi_processor_count, "SMs",
          "bf16", torch.cuda.is_bf16_supported())
EOF

if [ ! -d .devdata ]; then
    echo "gpu_check: no .devdata here: run bench/make_device_data.py on the dev machine and carry .devdata"
fi
gunzip -kf .devdata/MNIST/raw/*.gz
ls -la .devdata .devdata/MNIST/raw

RESLAB_TEST_DEVICE=$DEVICE timeout -k 10 120 "$PY" -m pytest -m gpu -v -x -rs --durations=0 -p no:cacheprovider \
    tests/train/test_gpu.py 2>&1 | tee "$OUT/pytest.log"
echo "gpu_check: pytest exit ${PIPESTATUS[0]} after $(( $(date +%s) - START )) s"

LEFT=$(( END_BY - ($(date +%s) - START) ))
if [ "$LEFT" -lt 60 ]; then LEFT=60; fi
# --budget: gpu.py starts no configuration it expects to end after it; timeout stops it for good (it then
# writes and prints what it measured); -k: SIGKILL 10 s after that if it does not stop
timeout -k 10 "$LEFT" "$PY" bench/gpu.py --data .devdata --out "$OUT" --device "$DEVICE" --budget $(( LEFT - 15 )) \
    ${GPU_BENCH_ARGS:-} 2> >(tee "$OUT/gpu-bench.stderr.log" >&2)
echo "gpu_check: bench exit $? after $(( $(date +%s) - START )) s"
ls -la "$OUT"
