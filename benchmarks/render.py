"""Renderer throughput: normal map + mask at 256x256 (prints a markdown table).

    python benchmarks/render.py [--device cpu|cuda] [--size 256] [--batches 1 32] [--repeat 3] [--scenes head-deca ict-deca ...]
    python benchmarks/render.py --memory [--size 512] [--batches 8 32]     # peak memory, each case in a fresh process

A map is one image of the batch; maps/s = batch * repeats / seconds (best of `--rounds` rounds, after a warm-up call).
`coverage` is the fraction of the image the mesh covers: the rasterizer's cost grows with it, so every row says it.
Scenes:
  head-deca    the built-in head (`facebench.models.builtin`, ~10k faces), random expressions, yaw +-30, pitch +-15 deg,
               DECA crop (landmark box x 1.25, as N2FNet's inputs): the face fills ~75-80% of the image. The main row.
  head-close   the same with a tight crop (landmark box x 1.0): the face fills ~90% of the image.
  ict-deca     ICT-FaceKit light (22k faces) at the DECA crop (needs the npz; skipped when absent).
  sphere-half  a 10,080-face ellipsoid covering ~50% of the image.
  sphere-fill  the same ellipsoid seen so close that it fills the whole image (large faces, 100% coverage).
With pytorch3d installed its backend is timed beside the torch one.

On a CPU shared with other jobs, run it as `OMP_WAIT_POLICY=PASSIVE python benchmarks/render.py` (or with `--threads 1`):
with the default (spinning) OpenMP wait policy the threads of every busy process fight for the cores and torch's many
short ops get 3-10x slower. The variable must be set before torch is imported, so it cannot be set from here."""
import argparse, json, math, os, resource, subprocess, sys, time
from pathlib import Path
import torch
from facebench.render.cameras import PerspectiveCamera
from facebench.render.raster import sphere_mesh, pytorch3d_available
from facebench.render.render import render

ICT = Path(__file__).resolve().parents[2] / 'shared/assets/ict-facekit/ict_facekit_light.npz'

def scene(name, B, S, device, seed=0):
    "(vertices (B,V,3), faces (F,3), camera) of a named scene."
    g = torch.Generator().manual_seed(seed)
    if name in ('head-deca', 'head-close', 'ict-deca'):
        from facebench.render.gallery import face_camera
        if name.startswith('head'):
            from facebench.models.builtin import builtin_head
            model = builtin_head(device=device)
        else:
            if not ICT.exists(): return None
            from facebench.models.ict import load_ict
            model = load_ict(ICT, device=device)
        lo, hi = (0.0, 0.8) if model.expression_kind == 'blendshape' else (-1.5, 1.5)
        expr = (lo + (hi - lo) * torch.rand(B, model.n_expression, generator=g)).to(device)
        with torch.no_grad(): out = model(expression=expr, batch_size=B)
        yaw, pitch = (torch.rand(B, generator=g) - 0.5) * 60, (torch.rand(B, generator=g) - 0.5) * 30
        cam = face_camera(out.vertices, out.landmarks, S, yaw=yaw.to(device), pitch=pitch.to(device),
                          alpha=1.0 if name == 'head-close' else 1.25)
        return out.vertices.contiguous(), out.faces, cam
    v, f = sphere_mesh(71, 72, device=device)                     # 10,080 faces
    v = v * torch.tensor([0.8, 1.0, 0.8], device=device)
    yaw = (torch.rand(B, generator=g) - 0.5) * 1.2
    dist = {'sphere-half': 2.6, 'sphere-fill': 1.6}[name]
    eye = torch.stack([dist * torch.sin(yaw), torch.zeros(B), dist * torch.cos(yaw)], -1).to(device)
    cam = PerspectiveCamera.look_at(eye, torch.zeros(B, 3, device=device), focal=torch.full((B, 2), 1.1 * S, device=device),
                                    image_size=(S, S))
    return v[None].expand(B, -1, -1).contiguous(), f, cam

def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()

def time_render(V, f, cam, backend, repeat, rounds, device):
    fn = lambda: render(V, cam, ('normal', 'mask'), faces=f, backend=backend)
    with torch.no_grad():
        out = fn(); sync(device)
        best = math.inf
        for _ in range(rounds):
            t = time.perf_counter()
            for _ in range(repeat): out = fn()
            sync(device)
            best = min(best, (time.perf_counter() - t) / repeat)
    return best, float(out.fragments.mask.float().mean())

def peak_memory_child(a):
    "One case in this (fresh) process: print peak memory in MB as JSON."
    dev = torch.device(a.device)
    V, f, cam = scene(a.scenes[0], a.batches[0], a.size, dev)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
    with torch.no_grad(): out = render(V, cam, ('normal', 'mask'), faces=f)
    sync(dev)
    peak = ((torch.cuda.max_memory_allocated() - base) if dev.type == 'cuda'
            else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) * 1024) / 2 ** 20
    print(json.dumps({'peak_mb': peak, 'coverage': float(out.fragments.mask.float().mean()), 'faces': f.shape[0]}))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--batches', type=int, nargs='+', default=[1, 32])
    ap.add_argument('--repeat', type=int, default=2)
    ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--scenes', nargs='+', default=['head-deca', 'head-close', 'ict-deca', 'sphere-half', 'sphere-fill'])
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--memory', action='store_true', help='peak memory of one render per case, each in a fresh process')
    ap.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    if a.child: return peak_memory_child(a)
    dev = torch.device(a.device)
    print(f"torch {torch.__version__}, device {dev}" + (f" ({torch.cuda.get_device_name()})" if dev.type == 'cuda' else
          f", {torch.get_num_threads()} threads, {os.cpu_count()} cores, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
          f"load {os.getloadavg()[0]:.1f}") + f", {a.size}x{a.size}, normal + mask")
    if a.memory:
        print("| scene | faces | batch | size | coverage | peak MB | MB/map |\n|---|---|---|---|---|---|---|")
        for name in a.scenes:
            for B in a.batches:
                cmd = [sys.executable, __file__, '--child', '--device', a.device, '--size', str(a.size), '--batches', str(B),
                       '--scenes', name] + (['--threads', str(a.threads)] if a.threads else [])
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode: print(f"| {name} | failed: {r.stderr.strip().splitlines()[-1]} |"); continue
                m = json.loads(r.stdout.strip().splitlines()[-1])
                print(f"| {name} | {m['faces']} | {B} | {a.size} | {m['coverage']:.2f} | {m['peak_mb']:.0f} | {m['peak_mb'] / B:.1f} |")
        return
    backends = ['torch'] + (['pytorch3d'] if pytorch3d_available() else [])
    print("| scene | faces | backend | batch | coverage | s/batch | maps/s |\n|---|---|---|---|---|---|---|")
    for name in a.scenes:
        for B in a.batches:
            sc = scene(name, B, a.size, dev)
            if sc is None: print(f"| {name} | skipped (no data) |"); break
            V, f, cam = sc
            for backend in backends:
                dt, cov = time_render(V, f, cam, backend, a.repeat, a.rounds, dev)
                print(f"| {name} | {f.shape[0]} | {backend} | {B} | {cov:.2f} | {dt:.3f} | {B / dt:.1f} |", flush=True)

if __name__ == '__main__':
    main()
