"""Expression codes: PCA-joint, PCA-split and the supervised autoencoder (3DFaceCAM's SAE, and with gradient-reversal
adversaries) at equal total dimension, measured on held-out identities of a FaceScape-like synthetic set.

The set: N identities sampled from ICT-FaceKit's identity modes (or the built-in head when the ICT file is absent) x the
FaceScape classes the model shows (20 for ICT, 14 for the built-in head; AU recipes, random intensity and jitter), face
region, farthest-point subsample.
Splits are by identity (60/20/20); the SAE watches the validation identities, the table is computed on the test ones.
Usage: python benchmarks/codes.py [--identities 60] [--steps 2000] [--n-id 20 --n-exp 10] [--device cuda]
"""
import argparse, platform, time
from pathlib import Path
import torch
from facebench.codes.data import expressible_classes, synthetic_set
from facebench.models.builtin import builtin_head
from facebench.codes.pca import fit_joint_pca, fit_split_pca
from facebench.codes.sae import SAEConfig, train_sae
from facebench.codes.measure import MeasureConfig, MEASURES, measure_codes

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ICT = ROOT.parent / 'shared' / 'assets' / 'ict-facekit' / 'ict_facekit_light.npz'


def load_model(kind: str, ict_path: Path):
    if kind in ('auto', 'ict') and ict_path.exists():
        from facebench.models.ict import load_ict
        return load_ict(ict_path, dtype=torch.float64), dict(vertices='face')
    if kind == 'ict': raise SystemExit(f'ICT npz not found at {ict_path}')
    return builtin_head(dtype=torch.float64), dict(vertices='face')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', default='auto', choices=['auto', 'ict', 'builtin'])
    ap.add_argument('--ict', type=Path, default=DEFAULT_ICT)
    ap.add_argument('--identities', type=int, default=60)
    ap.add_argument('--samples', type=int, default=2, help='meshes per (identity, class)')
    ap.add_argument('--vertices', type=int, default=1500, help='farthest-point subsample of the face region')
    ap.add_argument('--n-id', type=int, default=20)
    ap.add_argument('--n-exp', type=int, default=10)
    ap.add_argument('--steps', type=int, default=2000)
    ap.add_argument('--adversarial', type=float, default=0.1, help='weight of the gradient-reversal terms of "SAE+GRL"')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: torch default)')
    args = ap.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    t0 = time.time()
    model, keep = load_model(args.model, args.ict)
    usable = expressible_classes(model)               # the built-in head has no sideways jaw or mouth, no cheek puff
    ds = synthetic_set(model, n_identities=args.identities, samples_per_class=args.samples, n_vertices=args.vertices,
                       classes=usable, seed=args.seed, **keep)
    train, val, test = ds.subset('train'), ds.subset('val'), ds.subset('test')
    print(f'# set: {ds.source}, {len(usable)} classes, {len(ds)} meshes, {ds.n_vertices} vertices; train/val/test identities '
          f'{len(ds.splits["train"])}/{len(ds.splits["val"])}/{len(ds.splits["test"])} ({time.time() - t0:.1f} s)')
    codecs, timing = {}, {}
    t = time.time(); codecs['PCA-joint'] = fit_joint_pca(train, args.n_id, args.n_exp); timing['PCA-joint'] = time.time() - t
    t = time.time(); codecs['PCA-split'] = fit_split_pca(train, args.n_id, args.n_exp); timing['PCA-split'] = time.time() - t
    for name, adv in (('SAE (paper)', 0.0), ('SAE+GRL', args.adversarial)):
        cfg = SAEConfig.cpu(n_id=args.n_id, n_exp=args.n_exp, steps=args.steps, adversarial=adv, seed=args.seed)
        t = time.time()
        r = train_sae(train, cfg, val=val, progress=True, device=args.device)
        timing[name] = time.time() - t
        r.codec.name = name
        codecs[name] = r.codec
        v = r.history['val_rec_mm'][-1][1] if r.history['val_rec_mm'] else float('nan')
        print(f'# {name}: {args.steps} steps in {timing[name]:.0f} s, final loss {r.history["total"][-1]:.4f}, val rec {v:.3f} mm')
    if args.device != 'cpu':   # measure on the CPU
        for c in codecs.values():
            if hasattr(c, 'net'): c.net.cpu(); c.mean = c.mean.cpu()
    t = time.time()
    table = measure_codes(codecs, train, test, MeasureConfig(seed=args.seed))
    print(f'# measured in {time.time() - t:.0f} s; total {time.time() - t0:.0f} s on {platform.processor() or platform.machine()} '
          f'({args.device}), torch {torch.__version__}')
    print(f'# dims (n_id, n_exp): {table.info["dims"]}; transfer pairs {table.info["pairs"]}; sweeps {table.info["sweeps"]}')
    print()
    print(table.to_markdown())
    print()
    for k, m in table.winners().items(): print(f'- {MEASURES[k][0]}: {m}')


if __name__ == '__main__':
    main()
