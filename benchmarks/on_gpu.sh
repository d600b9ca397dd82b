#!/usr/bin/env bash
# Everything a machine with a CUDA GPU checks, in one pass of a few minutes: the cross-device tests
# (tests/*/test_devices.py), CUDA rows of the benchmarks, and gsplat side by side
# (benchmarks/compare_gsplat.py). CI has no GPU; run this where one is lent.
#
#   OUT=/tmp/gpu benchmarks/on_gpu.sh            # logs and JSON rows land in $OUT
#
# WHEELS names a folder of wheels to install first (gsplat, and what the machine lacks); GRADIANCE_ASSETS
# the folder holding bunny.obj when ../shared/assets is not beside the checkout. gsplat's CUDA extension
# compiles in the background (MAX_JOBS, TORCH_CUDA_ARCH_LIST) while the tests run.
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -n "${WHEELS:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu_site "$WHEELS"/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/gpu_site"
fi
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-/tmp/torch_ext}
TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$(python3 -c \
    "import torch; print('%d.%d' % torch.cuda.get_device_capability())")}
export TORCH_CUDA_ARCH_LIST
(MAX_JOBS=${MAX_JOBS:-16} timeout 420 python3 -c "from gsplat.cuda._backend import _C; print('gsplat built:', _C)" \
    >"$OUT/gsplat_build.log" 2>&1 &)

nvidia-smi -L | tee "$OUT/device.txt"
python3 -c "import torch, gradiance; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/device.txt"

echo "== cross-device tests"
timeout 240 python3 -m pytest -q -p no:cacheprovider --tb=short tests/mesh/test_devices.py \
    tests/points/test_devices.py tests/gaussians/test_devices.py tests/volume/test_devices.py \
    tests/core/test_transforms.py -k "cuda or devices" 2>&1 | tee "$OUT/tests.log" | tail -25

echo "== CUDA benchmark rows"
rows="$OUT/bench.jsonl"
for m in hard antialias softras dibr; do
    timeout 60 python3 benchmarks/bench_mesh.py --scene spot --size 256 --device cuda --method "$m" --out "$rows"
done
for s in 512 2048; do
    timeout 60 python3 benchmarks/bench_mesh.py --scene bunny --size $s --device cuda --out "$rows"
done
timeout 60 python3 benchmarks/bench_mesh.py --scene bunny --size 512 --device cuda --method softras --out "$rows"
timeout 90 python3 benchmarks/bench_mesh.py --scene ico8 --size 1024 --device cuda --out "$rows"
for cfg in "gaussians 100000 512" "gaussians 1000000 1024" "points 100000 512"; do
    set -- $cfg
    timeout 90 python3 benchmarks/bench_splats.py --renderer "$1" --primitives "$2" --size "$3" --device cuda \
        | tee -a "$rows"
done

echo "== gsplat side by side"
for _ in $(seq 60); do grep -q "gsplat built\|Error\|error" "$OUT/gsplat_build.log" && break; sleep 5; done
tail -5 "$OUT/gsplat_build.log"
timeout 150 python3 benchmarks/compare_gsplat.py --max-gaussians 100000 2>&1 | tee "$OUT/gsplat.jsonl"
timeout 120 python3 benchmarks/compare_gsplat.py --min-gaussians 1000000 2>&1 | tee -a "$OUT/gsplat.jsonl"
so=$(find "$TORCH_EXTENSIONS_DIR" -name 'gsplat_cuda*.so' 2>/dev/null | head -1)
[ -n "$so" ] && tar czf "$OUT/gsplat_cuda_so.tgz" -C "$(dirname "$so")" "$(basename "$so")"
ls -la "$OUT"
