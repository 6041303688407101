"""Forward-pass throughput of the morphable models (vertices per second), batch 1 and 256, CPU and CUDA when present.

FLAME's files are licensed, so FLAME is measured on a random model with FLAME's exact sizes (5,023 vertices, 9,976 faces,
300 shape + 100 expression components, 5 joints, pose correctives): the cost depends on the sizes, not the values.
ICT-FaceKit is read from ../shared/assets/ict-facekit when present (or --ict PATH). Usage: python benchmarks/models.py [--repeats N]
"""
import argparse, platform, time
from pathlib import Path
import numpy as np
import torch
from facebench.models.base import ModelData, MorphableModel, sample_params

def flame_sized_random(seed=0) -> ModelData:
    rng = np.random.default_rng(seed)
    V, F = 5023, 9976
    Jr = rng.random((5, V)); Jr /= Jr.sum(1, keepdims=True)
    W = rng.random((V, 5)); W /= W.sum(1, keepdims=True)
    return ModelData(name='flame-sized-random', v_template=rng.normal(size=(V, 3)) * 0.1, faces=rng.integers(0, V, (F, 3)),
                     shapedirs=rng.normal(size=(V, 3, 300)) * 1e-3, exprdirs=rng.normal(size=(V, 3, 100)) * 1e-3,
                     landmark_faces=rng.integers(0, F, 68), landmark_bary=rng.dirichlet(np.ones(3), 68),
                     joint_names=['global', 'neck', 'jaw', 'eye_left', 'eye_right'], parents=np.array([-1, 0, 1, 1, 1]),
                     J_regressor=Jr, lbs_weights=W, posedirs=rng.normal(size=(36, 3 * V)) * 1e-3,
                     contour_faces=rng.integers(0, F, (79, 17)), contour_bary=rng.dirichlet(np.ones(3), (79, 17)))

def models(ict_path):
    out = []
    try:
        from facebench.models.builtin import builtin_head
        out.append(('built-in head', lambda dev: builtin_head(device=dev)))
    except ImportError as e: print('built-in head unavailable:', e)
    out.append(('FLAME (sizes; random values)', lambda dev: MorphableModel(flame_sized_random(), device=dev)))
    if ict_path.exists():
        from facebench.models.ict import load_ict
        out.append(('ICT-FaceKit light', lambda dev: load_ict(ict_path, device=dev)))
    else: print(f'ICT npz not found at {ict_path}: skipped')
    return out

def bench(model, batch, repeats, device):
    p = sample_params(model, batch, generator=0)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    with torch.no_grad():
        for _ in range(2): model.from_params(p)   # warm-up
        sync(); t = time.perf_counter()
        for _ in range(repeats): model.from_params(p)
        sync(); dt = (time.perf_counter() - t) / repeats
    return dt, batch * model.n_vertices / dt

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--ict', type=Path, default=Path(__file__).resolve().parents[2] / 'shared/assets/ict-facekit/ict_facekit_light.npz')
    a = ap.parse_args()
    devices = [torch.device('cpu')] + ([torch.device('cuda')] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ''))
    print(f"| model | vertices | device | batch | ms / forward | vertices / s |\n|---|---|---|---|---|---|")
    for name, make in models(a.ict):
        for dev in devices:
            m = make(dev)
            for batch in (1, 256):
                dt, vps = bench(m, batch, a.repeats if batch == 1 else max(1, a.repeats // 2), dev)
                print(f"| {name} | {m.n_vertices} | {dev.type} | {batch} | {dt * 1e3:.2f} | {vps:.3g} |")
