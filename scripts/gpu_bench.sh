#!/usr/bin/env bash
# The GPU rows of README's speed table. On a machine with a CUDA GPU, from the repository root:
#   scripts/gpu_bench.sh [GOLDEN_DIR] [LOG_DIR] [IMAGES_DIR]      (COMPILE=0 skips the torch.compile step)
# GOLDEN_DIR (default ../shared/golden): the reference's forward.npz, for bench's fp32 check against its logits.
# IMAGES_DIR (default ../shared/samples, skipped when absent): images for predict's CPU stages with the model taken out.
# Each step has its own time limit, so one that fails or hangs leaves the others' numbers. The limits add up to
# 580 s without the compile step (COMPILE=0), which fits one 10-minute call of a lent GPU machine.
set -u
golden=${1:-../shared/golden}
logs=${2:-.}
images=${3:-../shared/samples}
export PYTHONUNBUFFERED=1 PYTHONPATH=.
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
timeout 220 python3 -m toonmatte bench --device cuda --golden "$golden" --repeats 10 2>&1 | tee "$logs/bench.txt"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graphs.py tests/test_deformable.py -k "cuda" \
  "tests/test_birefnet.py::test_composed_convs_on_cuda_match_the_cpu" "tests/test_birefnet.py::test_deformable_training_path_matches_inference" 2>&1 | tee "$logs/tests.txt"
timeout 120 python3 scripts/gpu_predict.py 2>&1 | tee "$logs/predict.txt"
[ -d "$images" ] && timeout 120 python3 -m toonmatte bench --device cuda --skip-model --skip-foreground \
  --images "$images" 2>&1 | tee "$logs/outputs.txt"
[ "${COMPILE:-1}" = 0 ] || timeout 120 python3 -m toonmatte bench --device cuda --golden "$golden" --skip-memory \
  --skip-foreground --batches 1 --compile 2>&1 | grep -v Warning | tee "$logs/compile.txt"
