"""Metric kernels against trimesh in the same run (prints a table).

    python benchmarks/metrics.py [--points 100000] [--faces 10000] [--repeat 3] [--mesh sphere|ict] [--skip-trimesh]

Point-to-surface of N query points (scattered within +-5% of the size of the mesh around it) against a ~10k-face
mesh on the CPU: facebench's exact KD-tree path vs `trimesh.proximity.closest_point` (rtree), with the largest
difference of their distances. On a CUDA device the brute-force kernel and a point-to-point Chamfer are timed too.
Times are medians over --repeat runs after one warm-up."""
import argparse, time, statistics
import numpy as np
import torch
from facebench.render.raster import sphere_mesh
from facebench.metrics.geometry import point_to_surface, chamfer_distance

def mesh(kind):
    if kind == 'ict':
        from facebench.models.ict import load_ict
        m = load_ict('/work/shared/assets/ict-facekit/ict_facekit_light.npz', dtype=torch.float64)
        out = m(batch_size=1)
        return out.vertices[0], out.faces
    v, f = sphere_mesh(71, 72, dtype=torch.float64)          # 10,080 faces
    return v * torch.tensor([0.8, 1.0, 0.8], dtype=torch.float64) * 0.1, f

def timed(fn, repeat):
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter(); out = fn(); ts.append(time.perf_counter() - t)
    return statistics.median(ts), min(ts), max(ts), out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--points', type=int, default=100_000)
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--mesh', default='sphere')
    ap.add_argument('--offset', type=float, default=0.01, help='query offset range as a fraction of the mesh extent')
    ap.add_argument('--skip-trimesh', action='store_true')
    a = ap.parse_args()
    v, f = mesh(a.mesh)
    g = torch.Generator().manual_seed(0)
    ext = float((v.max(0).values - v.min(0).values).max())
    idx = torch.randint(0, v.shape[0], (a.points,), generator=g)
    pts = v[idx] + a.offset * ext * (torch.rand(a.points, 3, generator=g, dtype=torch.float64) - 0.5) * 2
    print(f"mesh {a.mesh}: {v.shape[0]} vertices, {f.shape[0]} faces; {a.points} query points within +-{a.offset:g} x extent; "
          f"torch threads {torch.get_num_threads()}")
    rows = []
    tf, lo, hi, (d, q, fi) = timed(lambda: point_to_surface(pts, v, f, method='kdtree'), a.repeat)
    rows.append(('facebench kdtree (cpu)', tf, lo, hi, '-'))
    if not a.skip_trimesh:
        import trimesh
        tm = trimesh.Trimesh(v.numpy(), f.numpy(), process=False)
        tt, lo, hi, (qt, dt, ft) = timed(lambda: trimesh.proximity.closest_point(tm, pts.numpy()), 1)
        diff = np.abs(d.numpy() - dt)
        rows.append(('trimesh closest_point', tt, lo, hi, f'{diff.max():.2e}'))
    if torch.cuda.is_available():
        dev = torch.device('cuda')
        pc, vc, fc = pts.float().to(dev), v.float().to(dev), f.to(dev)
        def gpu():
            out = point_to_surface(pc, vc, fc, method='brute'); torch.cuda.synchronize(); return out
        tg, lo, hi, og = timed(gpu, a.repeat)
        rows.append(('facebench brute (cuda f32)', tg, lo, hi, f'{float((og.distances.double().cpu() - d).abs().max()):.2e}'))
        b = pc + 0.001
        def cham():
            out = chamfer_distance(pc, b); torch.cuda.synchronize(); return out
        tc, lo, hi, _ = timed(cham, a.repeat)
        rows.append((f'chamfer p2p {a.points}x{a.points} (cuda)', tc, lo, hi, '-'))
    print(f"{'method':>34} {'median s':>9} {'min s':>8} {'max s':>8} {'points/s':>10} {'max |d - d_fb|':>15}")
    for name, t, lo, hi, dstr in rows:
        print(f"{name:>34} {t:9.3f} {lo:8.3f} {hi:8.3f} {a.points / t:10.0f} {dstr:>15}")
    if not a.skip_trimesh:
        print(f"speed-up over trimesh: {tt / tf:.1f}x; distances equal (|diff| <= 1e-9 x extent) for {100 * (diff <= 1e-9 * ext).mean():.1f}% "
              f"of the points; facebench farther than trimesh for {int((d.numpy() > dt + 1e-12).sum())} points "
              "(trimesh picks among near-ties by normal and can return a slightly farther point)")

if __name__ == '__main__':
    main()
