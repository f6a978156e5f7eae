#!/usr/bin/env bash
# Issue 22's goal, measured: the quick lab's wall time on a 2-core CPU with AVX2 kernels only. On a CPU that has
# AVX-512 or AMX, PyTorch's own kernels, oneDNN's convolutions and MKL's matmuls are told to stop at AVX2, so that
# this machine stands in for the AVX2-only CPUs the goal names (the clock and caches stay this machine's: say which
# CPU ran it). Run it with nothing else running; it writes the lab into OUT (a new folder).
#
#   bash bench/lab_time.sh OUT [DATA_DIR]      (DATA_DIR: MNIST's files and CIFAR10-JPEG/cifar10-jpeg.zip;
#                                               default ../shared/data; PYTHON: the interpreter, default python)
#   NATIVE=1 bash bench/lab_time.sh OUT        (every instruction set this CPU has)
#
# Prints the CPU, the lab's own lines, then the wall time and each stage's seconds (from OUT/lab.json), slowest first.
set -euo pipefail
OUT=${1:?usage: bash bench/lab_time.sh OUT [DATA_DIR]}
DATA=${2:-../shared/data}
PY=${PYTHON:-python}
[ -e "$OUT" ] && { echo "lab_time: $OUT exists; give a new folder" >&2; exit 2; }
[ -d "$DATA" ] || { echo "lab_time: no data folder $DATA" >&2; exit 2; }
if [ -z "${NATIVE:-}" ]; then
  export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
grep -m1 "model name" /proc/cpuinfo || true
echo "cores: $(nproc); kernels: ${ATEN_CPU_CAPABILITY:-native}; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
START=$(date +%s.%N)
"$PY" -m reslab lab --profile quick --data-dir "$DATA" --cifar "imagefolder:$DATA/CIFAR10-JPEG/cifar10-jpeg.zip" \
  --out "$OUT"
END=$(date +%s.%N)
"$PY" - "$OUT" "$START" "$END" <<'EOF'
import json, sys
out, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
wall = end - start
print(f"quick lab: {int(wall // 60)} min {wall % 60:04.1f} s wall")
stages = json.load(open(f"{out}/lab.json"))["stages"]
for name, s in sorted(stages.items(), key=lambda kv: -kv[1].get("seconds", 0)):
    print(f"  {name:24s} {s.get('seconds', 0):7.1f} s")
EOF
