"""Synthetic data engine throughput beside N2FNet's training step rate, in the same run.

    python benchmarks/synth.py [--device cpu|cuda] [--model auto|builtin|ict] [--size 256] [--batch 16]
                               [--backbone vit_s16 vit_l16] [--repeat 3]

samples/s: `SyntheticFaces.batch` (sampling, DECA crop, rendering N*/mask/S*/landmarks/UV) per second, times the batch.
step/s: one full training step (data + forward + loss + backward + Adam) of stage 1 (L_param) and stage 2 (L_render),
bf16 autocast on CUDA. The first call of each configuration is a warm-up and is not timed."""
import argparse, os, time
from pathlib import Path
import torch

ICT = Path('/work/shared/assets/ict-facekit/ict_facekit_light.npz')

def pick_model(kind, device):
    from facebench.models.load import load_model
    if kind == 'ict':
        if not ICT.exists(): raise SystemExit(f'ICT npz not found at {ICT}')
        return load_model(f'ict:{ICT}', device=device), 'ict'
    if kind not in ('auto', 'builtin'): raise SystemExit(f"--model must be auto, builtin or ict, got {kind!r}")
    return load_model('builtin', device=device), 'builtin'

def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()

def timed(fn, device, repeat):
    fn(); sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat): fn()
    sync(device)
    return (time.perf_counter() - t0) / repeat

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--model', default='auto')
    ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--backbone', nargs='*', default=None, help='presets to time training steps for (default: vit_s16 and, on CUDA, vit_l16)')
    ap.add_argument('--repeat', type=int, default=3)
    a = ap.parse_args()
    dev = torch.device(a.device)
    from facebench.synth import SyntheticFaces, SynthConfig
    from facebench.n2f.train import config_from_dict, compute_loss, param_groups, set_trainable
    from facebench.n2f.model import N2FNet
    from facebench.n2f.losses import face_indicator
    model, name = pick_model(a.model, dev)
    cfg = SynthConfig(image_size=a.size, batch_size=a.batch)
    ds = SyntheticFaces(model, cfg, seed=0)
    it = iter(range(10 ** 9))
    s = timed(lambda: ds.batch(next(it)), dev, a.repeat)
    name_dev = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'cpu ({torch.get_num_threads()} threads)'
    print(f"device {name_dev}; model {name} ({model.n_vertices} vertices, {model.faces.shape[0]} faces); {a.size}x{a.size}; batch {a.batch}")
    print(f"synthetic data: {s * 1000:.1f} ms/batch, {a.batch / s:.1f} samples/s")
    backbones = a.backbone if a.backbone is not None else (['vit_s16', 'vit_l16'] if dev.type == 'cuda' else ['vit_s16'])
    ind = face_indicator(model)
    for bb in backbones:
        for stage in ('param', 'render'):
            tc = config_from_dict(dict(stage=stage, batch_size=a.batch, synth={'image_size': a.size}, net={'backbone': bb, 'image_size': a.size},
                                       device=str(dev), progress=False))
            torch.manual_seed(0)
            net = N2FNet(model, tc.net).to(dev)
            set_trainable(net, stage)
            opt = torch.optim.Adam(param_groups(net, tc))
            def step():
                b = ds.batch(next(it))
                L = compute_loss(net, model, b, tc, ind)
                opt.zero_grad(set_to_none=True); L.total.backward(); opt.step()
            st = timed(step, dev, a.repeat)
            mem = f", peak {torch.cuda.max_memory_allocated(dev) / 2**30:.1f} GiB" if dev.type == 'cuda' else ''
            print(f"train step {bb:8s} stage {stage:6s} (amp={'bf16' if dev.type == 'cuda' else 'off'}): {st * 1000:8.1f} ms/step, "
                  f"{1 / st:6.2f} step/s, {a.batch / st:7.1f} samples/s{mem}")
            del net, opt
            if dev.type == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(dev)

if __name__ == '__main__':
    main()
