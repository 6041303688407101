#!/usr/bin/env bash
# Every GPU figure the issues ask for, for a session (or a Colab GPU) that has one. Each line prints a markdown table;
# copy them into benchmarks/RESULTS.md with the card's name. Each step stays well under 10 minutes on an H100.
#   bash benchmarks/gpu.sh 2>&1 | tee gpu_results.txt
# The CUDA-only tests run with the rest: python -m pytest -q tests -k "cuda or gpu"
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
# renderer (#4): maps/s at batch 1, 32, 256 (target >= 20,000 maps/s at 256 on an H100), pytorch3d beside it when installed
python benchmarks/render.py --device cuda --batches 1 32 256 --scenes head-deca head-close ict-deca --repeat 5
python benchmarks/render.py --device cuda --memory --size 256 --batches 32 256
# metrics (#5): point-to-surface and Chamfer on CUDA beside trimesh
python benchmarks/metrics.py --points 100000 --repeat 5
# N2FNet (#6): regressor FPS (target ViT-L/16 >= 100 FPS at batch 1), synthetic data vs training step
python benchmarks/n2f.py --device cuda --batches 1 32
python benchmarks/synth.py --device cuda --backbone vit_s16 vit_l16
# N2FNet accuracy after a fixed budget (issue: 30 GPU minutes; run as several time-sliced calls, it resumes):
#   python benchmarks/n2f.py --device cuda --backbones --train-steps 20000 --train-backbone vit_b16 --out runs/bench_n2f
# AUFART (#8): paper-size inference and training throughput
python benchmarks/aufart.py --device cuda --preset full --batches 1 32
