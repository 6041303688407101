"""N2FNet regressor inference speed: frames per second at batch 1 and 32 for ViT-S/B/L/16, fp32 and bf16.

    python benchmarks/n2f.py [--device cuda|cpu] [--backbones vit_s16 vit_b16 vit_l16] [--batches 1 32] [--repeat 20]

A frame is one 256x256 input through backbone + FLAME module + camera module (random weights: speed does not
depend on them); FPS = batch * repeats / seconds after warm-up, synchronised. Output widths are FLAME's (300+6+100+2).

With `--train-steps N` it then trains N2FNet two-stage (N steps each) on synthetic data of the built-in head and prints
the regressor, the fitting baseline and the mean shape on the same held-out test set: CD / MNE / CR@2mm / NME / FPS,
all through facebench.metrics (facebench.n2f.tables). A tiny CPU check:

    python benchmarks/n2f.py --device cpu --backbones --train-steps 20 --train-backbone vit_tiny --size 32 --n-vertices 500 \
        --train-batch 8 --test-batches 1 --test-batch 8 --fit-steps 10 15
"""
import argparse, dataclasses, time
from pathlib import Path
import torch
from facebench.n2f.model import N2FNet, N2FConfig, ParamLayout

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--backbones', nargs='*', default=['vit_s16', 'vit_b16', 'vit_l16'])
    ap.add_argument('--batches', type=int, nargs='+', default=[1, 32])
    ap.add_argument('--dtypes', nargs='+', default=['fp32', 'bf16'])
    ap.add_argument('--repeat', type=int, default=20)
    ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--train-steps', type=int, default=0, help='steps per stage of the accuracy run (0: speed only)')
    ap.add_argument('--train-backbone', default='vit_s16')
    ap.add_argument('--train-batch', type=int, default=16)
    ap.add_argument('--n-vertices', type=int, default=None, help='built-in head resolution (default: its own)')
    ap.add_argument('--test-batches', type=int, default=8)
    ap.add_argument('--test-batch', type=int, default=16)
    ap.add_argument('--fit-steps', type=int, nargs=2, default=[100, 200], metavar=('COARSE', 'FINE'))
    ap.add_argument('--out', default='runs/bench_n2f')
    a = ap.parse_args()
    dev = torch.device(a.device)
    if dev.type == 'cuda': torch.backends.cuda.matmul.allow_tf32 = False
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == 'cuda' else (lambda: None)
    print(f"device {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}; input {a.size}x{a.size}; FLAME layout")
    print(f"{'backbone':>9} {'dtype':>5} {'batch':>5} {'ms/batch':>9} {'FPS':>9}")
    for bb in a.backbones:
        net = N2FNet(ParamLayout(300, 6, 100, 2), N2FConfig(backbone=bb, image_size=a.size)).to(dev).eval()
        for dt in a.dtypes:
            for B in a.batches:
                x = torch.randn(B, 3, a.size, a.size, device=dev)
                f = torch.full((B, 2), 1500.0, device=dev); c = torch.full((B, 2), a.size / 2, device=dev)
                ctx = torch.autocast(dev.type, dtype=torch.bfloat16) if dt == 'bf16' else torch.autocast(dev.type, enabled=False)
                with torch.inference_mode(), ctx:
                    for _ in range(3): net(x, f, c)
                    sync(); t0 = time.perf_counter()
                    for _ in range(a.repeat): net(x, f, c)
                    sync(); s = (time.perf_counter() - t0) / a.repeat
                print(f"{bb:>9} {dt:>5} {B:>5} {s * 1000:9.2f} {B / s:9.1f}")
        del net
        if dev.type == 'cuda': torch.cuda.empty_cache()
    if a.train_steps > 0: accuracy(a, dev)

def accuracy(a, dev):
    "Two-stage training for a fixed budget, then regressor vs fitting baseline vs mean shape on one test set."
    from facebench.n2f.train import config_from_dict, run_n2f_train
    from facebench.n2f.fit import FitConfig
    from facebench.n2f.tables import (AblationConfig, TableConfig, train_two_stage, checkpoint_method, fitting_method,
                                      mean_shape_method, evaluate_methods)
    from facebench.models.load import load_model
    tc = config_from_dict(dict(model='builtin', n_vertices=a.n_vertices, batch_size=a.train_batch, steps=a.train_steps,
                               warmup_steps=max(1, a.train_steps // 20), val_every=max(1, a.train_steps // 4), val_batches=2,
                               ckpt_every=max(1, a.train_steps // 4), out_dir=a.out, device=str(dev), progress=False,
                               synth={'image_size': a.size}, net={'backbone': a.train_backbone, 'image_size': a.size}))
    cfg = AblationConfig(train=tc, stage2_steps=a.train_steps,
                         table=TableConfig(test_batches=a.test_batches, batch_size=a.test_batch, speed_batch_sizes=tuple(a.batches),
                                           speed_repeats=max(1, a.repeat // 4)),
                         fit=FitConfig(coarse_steps=a.fit_steps[0], fine_steps=a.fit_steps[1]))
    model = load_model('builtin', n_vertices=a.n_vertices, device=dev)
    t0 = time.perf_counter()
    run = train_two_stage(cfg, model)
    print(f"\ntrained {a.train_backbone} two-stage, {a.train_steps} steps per stage, batch {a.train_batch}, "
          f"{a.size} px, in {time.perf_counter() - t0:.0f} s (checkpoints in {a.out})")
    methods = [checkpoint_method(run.checkpoint, model, f'N2FNet ({a.train_backbone})'), fitting_method(model, cfg.fit),
               mean_shape_method(model, a.size)]
    t = evaluate_methods(methods, model, cfg.table, tc.synth, title=f'regressor vs fitting baseline after {a.train_steps} steps')
    print(t.markdown())
    r, f = t.rows[0], t.rows[1]
    print(f"\nregressor / fitting CD: {r.cd_mm / f.cd_mm:.2f}x; regressor / fitting speed at batch {a.batches[0]}: {r.fps / f.fps:.0f}x")

if __name__ == '__main__':
    main()
