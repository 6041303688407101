"""Rasterizer against independent references: analytic triangle and sphere, numpy Möller–Trumbore ray casting,
trimesh vertex normals, gradcheck; and its input errors."""
import math
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from facebench.core import InputError
from facebench.render.cameras import PerspectiveCamera, OrthographicCamera
from facebench.render.raster import (rasterize, rasterize_screen, interpolate, vertex_normals, sphere_mesh, soft_mask,
                                     antialias_mask, check_mesh, pytorch3d_available)
from facebench.rotations import axis_angle_to_matrix

trimesh = pytest.importorskip('trimesh')

def _cam(R, t, f, c, size, dtype=torch.float64):
    T = lambda x: torch.as_tensor(np.asarray(x), dtype=dtype)[None]
    return PerspectiveCamera(T(R), T(t), T(f), T(c), size)

# ---------------------------------------------------------------- Möller–Trumbore reference (numpy, vectorised)
def ray_cast(O, D, tri, chunk=1 << 22):
    """Nearest hit of rays O + s D (P,3) against triangles tri (F,3,3): (face (P,) -1 for none, s (P,), u, v)."""
    P, Fn = len(D), len(tri)
    best_s, best_f = np.full(P, np.inf), np.full(P, -1)
    best_uv = np.zeros((P, 2))
    v0, e1, e2 = tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    step = max(1, chunk // Fn)
    for s0 in range(0, P, step):
        d = D[s0:s0 + step, None]                          # (p,1,3)
        o = O[s0:s0 + step, None] if O.ndim == 2 else O
        pvec = np.cross(d, e2[None])                       # (p,F,3)
        det = (e1[None] * pvec).sum(-1)
        ok = np.abs(det) > 1e-14
        inv = np.where(ok, 1 / np.where(ok, det, 1), 0)
        tvec = o - v0[None]
        u = (tvec * pvec).sum(-1) * inv
        qvec = np.cross(tvec, e1[None])
        v = (d * qvec).sum(-1) * inv
        s = (e2[None] * qvec).sum(-1) * inv
        hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (s > 1e-9)
        s = np.where(hit, s, np.inf)
        j = s.argmin(1)
        r = np.arange(len(j))
        sel = np.isfinite(s[r, j])
        best_s[s0:s0 + step] = s[r, j]
        best_f[s0:s0 + step] = np.where(sel, j, -1)
        best_uv[s0:s0 + step] = np.stack([u[r, j], v[r, j]], -1)
    return best_f, best_s, best_uv

def camera_rays(cam):
    "World-space origin and per-pixel directions (unnormalised, camera z = 1) of a batch-1 PerspectiveCamera."
    H, W = cam.image_size
    R, t = cam.R[0].double().numpy(), cam.t[0].double().numpy()
    f, c = cam.focal[0].double().numpy(), cam.principal[0].double().numpy()
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    dc = np.stack([(u - c[0]) / f[0], (v - c[1]) / f[1], np.ones_like(u)], -1).reshape(-1, 3)
    return -R.T @ t, dc @ R          # directions: R^T d_cam, row form

def random_mesh(seed, subdivisions=3):
    rng = np.random.default_rng(seed)
    m = trimesh.creation.icosphere(subdivisions=subdivisions)
    v = m.vertices * (1 + 0.15 * rng.standard_normal((len(m.vertices), 1)))   # bumpy, self-occluding
    v[:, 0] *= 1.3
    return v, m.faces

def random_camera(rng, size=(64, 80), dtype=torch.float64):
    d = rng.standard_normal(3); d /= np.linalg.norm(d)
    eye = torch.tensor(d * rng.uniform(2.8, 4.0), dtype=dtype)[None]
    up = torch.tensor(rng.standard_normal(3), dtype=dtype)[None]
    H, W = size
    f = torch.tensor([[rng.uniform(50, 90), rng.uniform(50, 90)]], dtype=dtype)
    c = torch.tensor([[W / 2 + rng.uniform(-5, 5), H / 2 + rng.uniform(-5, 5)]], dtype=dtype)
    return PerspectiveCamera.look_at(eye, torch.zeros(1, 3, dtype=dtype), up, f, c, size)

# ---------------------------------------------------------------- analytic scenes
def test_single_triangle_coverage_depth_and_perspective_bary():
    # a tilted triangle in front of an identity camera: coverage = pixel centres inside the projected triangle
    # (exact rational half-plane tests), barycentrics/depth = ray-plane intersection
    P = np.array([[-0.4, -0.3, 2.0], [0.5, -0.2, 3.0], [0.0, 0.45, 2.5]])
    cam = _cam(np.eye(3), np.zeros(3), [40., 44.], [16., 15.], (30, 32))
    fr = rasterize(torch.tensor(P)[None], torch.tensor([[0, 1, 2]]), cam)
    q = P[:, :2] / P[:, 2:] * [40., 44.] + [16., 15.]
    u, v = np.meshgrid(np.arange(32) + 0.5, np.arange(30) + 0.5)
    cr = lambda a, b: (b[0] - a[0]) * (v - a[1]) - (b[1] - a[1]) * (u - a[0])
    e = np.stack([cr(q[0], q[1]), cr(q[1], q[2]), cr(q[2], q[0])])
    inside = (e >= 0).all(0) | (e <= 0).all(0)
    assert inside.sum() > 50
    assert np.array_equal(fr.mask[0].numpy(), inside)
    O, D = camera_rays(cam)
    f, s, uv = ray_cast(O, D, P[None])
    assert np.array_equal(f.reshape(30, 32) >= 0, inside)
    bary = np.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], -1).reshape(30, 32, 3)
    np.testing.assert_allclose(fr.bary[0].detach().numpy()[inside], bary[inside], atol=1e-9)
    np.testing.assert_allclose(fr.depth[0].detach().numpy()[inside], s.reshape(30, 32)[inside], rtol=1e-10)
    assert (fr.depth[0][~torch.as_tensor(inside)] == 0).all() and (fr.pix_to_face[0][~torch.as_tensor(inside)] == -1).all()

def test_sphere_normals_within_one_degree_of_analytic():
    v, f = sphere_mesh(48, 96, dtype=torch.float64)
    cam = PerspectiveCamera.look_at(torch.tensor([[0.3, -0.2, 3.5]], dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64),
                                    focal=torch.tensor([[150., 150.]], dtype=torch.float64), image_size=(128, 128))
    fr = rasterize(v[None], f, cam)
    n = F.normalize(interpolate(vertex_normals(v[None], f), fr, f), dim=-1)[0].numpy()
    O, D = camera_rays(cam)
    Dn = D / np.linalg.norm(D, axis=1, keepdims=True)
    b = (O * Dn).sum(-1); disc = b ** 2 - (O @ O - 1)
    hit = O + (-b - np.sqrt(np.clip(disc, 0, None)))[:, None] * Dn          # the exact sphere
    interior = (disc > 0.1).reshape(128, 128) & fr.mask[0].numpy()
    ang = np.degrees(np.arccos(np.clip((n.reshape(-1, 3) * hit).sum(-1), -1, 1))).reshape(128, 128)[interior]
    print(f"sphere normals: max {ang.max():.3f} deg, mean {ang.mean():.3f} deg over {interior.sum()} px")
    assert interior.sum() > 3000 and ang.max() < 1.0

# ---------------------------------------------------------------- ray casting on random meshes and cameras
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_matches_moller_trumbore_ray_casting(seed):
    v, f = random_mesh(seed)
    rng = np.random.default_rng(100 + seed)
    cam = random_camera(rng)
    fr = rasterize(torch.tensor(v)[None], torch.tensor(f), cam)
    O, D = camera_rays(cam)
    rf, rs, _ = ray_cast(O, D, v[f])
    p2f = fr.pix_to_face[0].reshape(-1).numpy()
    agree = (p2f == rf).mean()
    both = (p2f >= 0) & (p2f == rf)
    rel = np.abs(fr.depth[0].reshape(-1).detach().numpy()[both] - rs[both]) / rs[both]
    print(f"seed {seed}: pix_to_face agreement {100 * agree:.3f}%, covered {(rf >= 0).mean():.2f}, max rel depth err {rel.max():.2e}")
    assert (rf >= 0).mean() > 0.1 and agree >= 0.995 and rel.max() < 1e-4

def test_matches_ray_casting_float32_batch():
    v, f = random_mesh(7)
    rng = np.random.default_rng(7)
    cams = [random_camera(rng, (48, 48), torch.float32) for _ in range(3)]
    cam = PerspectiveCamera(*(torch.cat([getattr(c, k) for c in cams]) for k in ('R', 't', 'focal', 'principal')), (48, 48))
    fr = rasterize(torch.tensor(v, dtype=torch.float32)[None].expand(3, -1, -1), torch.tensor(f), cam)
    for i, c in enumerate(cams):
        O, D = camera_rays(c)
        rf, rs, _ = ray_cast(O, D, v[f])
        p2f = fr.pix_to_face[i].reshape(-1).numpy()
        both = (p2f >= 0) & (p2f == rf)
        rel = np.abs(fr.depth[i].reshape(-1).numpy()[both] - rs[both]) / rs[both]
        print(f"float32 camera {i}: agreement {100 * (p2f == rf).mean():.3f}%, max rel depth err {rel.max():.1e}")
        assert (p2f == rf).mean() >= 0.995 and rel.max() < 1e-4

def test_builtin_head_matches_ray_casting():
    builtin = pytest.importorskip('facebench.models.builtin')
    model = builtin.builtin_head(dtype=torch.float64)
    out = model(expression=torch.rand(1, model.n_expression, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.7,
                batch_size=1)
    v, f = out.vertices[0].numpy(), out.faces.numpy()
    ctr, ext = v.mean(0), np.ptp(v, 0).max()
    rng = np.random.default_rng(3)
    for _ in range(2):
        d = rng.standard_normal(3) * [0.5, 0.3, 0.2] + [0, 0, 1]; d /= np.linalg.norm(d)
        eye = torch.tensor(ctr + 2.5 * ext * d)[None]
        cam = PerspectiveCamera.look_at(eye, torch.tensor(ctr)[None], focal=torch.tensor([[120., 120.]], dtype=torch.float64), image_size=(64, 64))
        fr = rasterize(out.vertices, out.faces, cam)
        O, D = camera_rays(cam)
        rf, rs, _ = ray_cast(O, D, v[f])
        p2f = fr.pix_to_face[0].reshape(-1).numpy()
        both = (p2f >= 0) & (p2f == rf)
        rel = np.abs(fr.depth[0].reshape(-1).detach().numpy()[both] - rs[both]) / rs[both]
        print(f"head: agreement {100 * (p2f == rf).mean():.3f}%")
        assert (rf >= 0).mean() > 0.05 and (p2f == rf).mean() >= 0.995 and rel.max() < 1e-4

def test_builtin_head_deca_crop_float32_matches_ray_casting():
    # the benchmark's main scene: the built-in head filling a DECA crop, float32, batch of 2 poses
    builtin = pytest.importorskip('facebench.models.builtin')
    from facebench.render.gallery import face_camera
    model = builtin.builtin_head()
    out = model(expression=torch.rand(2, model.n_expression, generator=torch.Generator().manual_seed(1)) * 0.7, batch_size=2)
    cam = face_camera(out.vertices, out.landmarks, 80, yaw=torch.tensor([-25., 30.]), pitch=torch.tensor([10., -5.]))
    fr = rasterize(out.vertices, out.faces, cam)
    for i in range(2):
        O, D = camera_rays(cam[i])
        v = out.vertices[i].double().numpy()
        rf, rs, _ = ray_cast(O, D, v[out.faces.numpy()])
        p2f = fr.pix_to_face[i].reshape(-1).numpy()
        both = (p2f >= 0) & (p2f == rf)
        rel = np.abs(fr.depth[i].reshape(-1).double().numpy()[both] - rs[both]) / rs[both]
        print(f"head DECA crop {i}: agreement {100 * (p2f == rf).mean():.3f}%, covered {(rf >= 0).mean():.2f}, max rel depth err {rel.max():.1e}")
        assert (rf >= 0).mean() > 0.6 and (p2f == rf).mean() >= 0.995 and rel.max() < 1e-4

def _head_agreement(out, seed, n_cams=2, size=48):
    v, f = out.vertices[0].double().numpy(), out.faces.numpy()
    ctr, ext = v.mean(0), np.ptp(v, 0).max()
    rng = np.random.default_rng(seed)
    res = []
    for _ in range(n_cams):
        d = rng.standard_normal(3) * [0.5, 0.3, 0.2] + [0, 0, 1]; d /= np.linalg.norm(d)
        cam = PerspectiveCamera.look_at(torch.tensor(ctr + 2.5 * ext * d)[None], torch.tensor(ctr)[None],
                                        focal=torch.tensor([[2.2 * size, 2.2 * size]], dtype=torch.float64), image_size=(size, size))
        fr = rasterize(out.vertices.double(), out.faces, cam)
        O, D = camera_rays(cam)
        rf, rs, _ = ray_cast(O, D, v[f])
        p2f = fr.pix_to_face[0].reshape(-1).numpy()
        both = (p2f >= 0) & (p2f == rf)
        rel = np.abs(fr.depth[0].reshape(-1).detach().numpy()[both] - rs[both]) / rs[both]
        res.append(((p2f == rf).mean(), (rf >= 0).mean(), rel.max()))
    return res

def test_ict_matches_ray_casting():
    path = '/work/shared/assets/ict-facekit/ict_facekit_light.npz'
    import os
    if not os.path.exists(path): pytest.skip(f'{path} is absent')
    ict = pytest.importorskip('facebench.models.ict')
    model = ict.load_ict(path, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    out = model(shape=torch.randn(1, model.n_shape, generator=g, dtype=torch.float64), batch_size=1)
    for agree, cov, rel in _head_agreement(out, 11):
        print(f"ICT: pix_to_face agreement {100 * agree:.3f}%, covered {cov:.2f}, max rel depth err {rel:.1e}")
        assert cov > 0.2 and agree >= 0.995 and rel < 1e-4

@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_large_overlapping_triangles_match_ray_casting(dtype):
    # triangles of 20-150 px (the z-buffer cuts boxes over 32 px into tiles), interpenetrating, some leaving the image
    rng = np.random.default_rng(21)
    P = rng.uniform([-1.2, -1.0, 2.0], [1.2, 1.0, 4.0], (24, 1, 3)) + rng.normal(0, 1.2, (24, 3, 3)) * [1, 1, 0.2]
    P = P.reshape(-1, 3)
    f = np.arange(len(P)).reshape(-1, 3)
    cam = _cam(np.eye(3), np.zeros(3), [70., 75.], [61., 49.], (100, 120), dtype)
    fr = rasterize(torch.tensor(P, dtype=dtype)[None], torch.tensor(f), cam)
    O, D = camera_rays(cam)
    rf, rs, _ = ray_cast(O, D, P[f])
    p2f = fr.pix_to_face[0].reshape(-1).numpy()
    both = (p2f >= 0) & (p2f == rf)
    rel = np.abs(fr.depth[0].reshape(-1).double().numpy()[both] - rs[both]) / rs[both]
    q = P[:, :2] / P[:, 2:] * 70
    print(f"large triangles ({dtype}): agreement {100 * (p2f == rf).mean():.3f}%, covered {(rf >= 0).mean():.2f}, "
          f"max rel depth err {rel.max():.1e}")
    assert np.ptp(q.reshape(-1, 3, 2), 1).max() > 64              # the tiled path is exercised
    assert (rf >= 0).mean() > 0.4 and (p2f == rf).mean() >= 0.995 and rel.max() < 1e-4

def test_ict_deca_crop_float32_matches_ray_casting():
    # the renderer's main use: a face filling a DECA crop (dense coverage, float32)
    path = '/work/shared/assets/ict-facekit/ict_facekit_light.npz'
    import os
    if not os.path.exists(path): pytest.skip(f'{path} is absent')
    ict = pytest.importorskip('facebench.models.ict')
    from facebench.render.cameras import deca_crop_box, crop_camera
    out = ict.load_ict(path)(batch_size=1)
    v, lm = out.vertices[0], out.landmarks[0]
    ctr = v.mean(0)
    eye = ctr + 3 * (v.max(0).values - v.min(0).values).max() * F.normalize(torch.tensor([0.4, 0.15, 1.0]), dim=0)
    big = PerspectiveCamera.look_at(eye[None], ctr[None], focal=torch.tensor([[4000., 4000.]]), image_size=(1024, 1024))
    cam = crop_camera(big, deca_crop_box(big.project(lm[None])[0], 1.25), 80)
    fr = rasterize(out.vertices, out.faces, cam)
    O, D = camera_rays(cam)
    vv = v.double().numpy()
    rf, rs, _ = ray_cast(O, D, vv[out.faces.numpy()])
    p2f = fr.pix_to_face[0].reshape(-1).numpy()
    both = (p2f >= 0) & (p2f == rf)
    rel = np.abs(fr.depth[0].reshape(-1).double().numpy()[both] - rs[both]) / rs[both]
    print(f"ICT DECA crop float32: agreement {100 * (p2f == rf).mean():.3f}%, covered {(rf >= 0).mean():.2f}, max rel depth err {rel.max():.1e}")
    assert (rf >= 0).mean() > 0.7 and (p2f == rf).mean() >= 0.995 and rel.max() < 1e-4

def test_orthographic_large_faces_and_negative_depths():
    # orthographic depth may be negative; big faces cross the tile size; reference: parallel rays
    rng = np.random.default_rng(5)
    P = (rng.uniform(-1, 1, (16, 1, 3)) + rng.normal(0, 0.8, (16, 3, 3))).reshape(-1, 3)
    f = np.arange(len(P)).reshape(-1, 3)
    s, size = 0.7, 90
    cam = OrthographicCamera(torch.tensor([s], dtype=torch.float64), torch.zeros(1, dtype=torch.float64),
                             torch.zeros(1, dtype=torch.float64), (size, size))
    fr = rasterize(torch.tensor(P)[None], torch.tensor(f), cam)
    u, w = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    X = (u / (size / 2) - 1) / s; Y = -(w / (size / 2) - 1) / s
    O = np.stack([X, Y, np.full_like(X, 10.0)], -1).reshape(-1, 3)
    rf, rs, _ = ray_cast(O, np.tile([[0., 0., -1.]], (len(O), 1)), P[f])
    p2f = fr.pix_to_face[0].reshape(-1).numpy()
    both = (p2f == rf) & (rf >= 0)
    depth = fr.depth[0].reshape(-1).numpy()
    assert (depth[both] < 0).any() and (depth[both] > 0).any()
    assert (rf >= 0).mean() > 0.3 and (p2f == rf).mean() >= 0.995
    np.testing.assert_allclose(depth[both], s * (rs[both] - 10.0), atol=1e-9)

def test_orthographic_matches_parallel_rays():
    v, f = random_mesh(4, 2)
    cam = OrthographicCamera(torch.tensor([0.6], dtype=torch.float64), torch.tensor([0.05], dtype=torch.float64),
                             torch.tensor([-0.1], dtype=torch.float64), (40, 40))
    fr = rasterize(torch.tensor(v)[None], torch.tensor(f), cam)
    u, w = np.meshgrid(np.arange(40) + 0.5, np.arange(40) + 0.5)
    X = (u / 20 - 1) / 0.6 - 0.05; Y = -(w / 20 - 1) / 0.6 + 0.1           # inverse of DECA's projection
    O = np.stack([X, Y, np.full_like(X, 10.0)], -1).reshape(-1, 3)
    rf, rs, _ = ray_cast(O, np.tile([[0., 0., -1.]], (len(O), 1)), v[f])
    assert (fr.pix_to_face[0].reshape(-1).numpy() == rf).mean() >= 0.995
    both = (fr.pix_to_face[0].reshape(-1).numpy() == rf) & (rf >= 0)
    np.testing.assert_allclose(fr.depth[0].reshape(-1).numpy()[both], 0.6 * (rs[both] - 10.0), atol=1e-9)  # depth = -sZ

def test_chunking_does_not_change_the_result():
    v, f = random_mesh(5, 2)
    cam = random_camera(np.random.default_rng(5), (32, 32))
    a = rasterize(torch.tensor(v)[None], torch.tensor(f), cam)
    b = rasterize(torch.tensor(v)[None], torch.tensor(f), cam, chunk_size=97)
    assert torch.equal(a.pix_to_face, b.pix_to_face)

def test_window_buckets_and_tiles_do_not_change_the_result(monkeypatch):
    # the GPU's coarse window sizes, and tiny tiles (every face box cut into 2x2 windows), give the same z-buffer
    import facebench.render.raster as R
    v, f = random_mesh(6, 3)
    cam = random_camera(np.random.default_rng(6), (64, 64))
    V, Fc = torch.tensor(v)[None], torch.tensor(f)
    ref = rasterize(V, Fc, cam).pix_to_face
    monkeypatch.setattr(R, 'WINDOW_SIZES', R.WINDOW_SIZES_GPU)
    assert torch.equal(rasterize(V, Fc, cam).pix_to_face, ref)
    monkeypatch.setattr(R, 'WINDOW_SIZES', (1, 2))
    assert torch.equal(rasterize(V, Fc, cam, chunk_size=50).pix_to_face, ref)

def test_backface_culling_keeps_the_visible_side_of_a_closed_mesh():
    v, f = sphere_mesh(16, 32, dtype=torch.float64)
    cam = PerspectiveCamera.look_at(torch.tensor([[0., 0., 3.]], dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64),
                                    focal=torch.tensor([[60., 60.]], dtype=torch.float64), image_size=(48, 48))
    a, b = rasterize(v[None], f, cam), rasterize(v[None], f, cam, cull_backfaces=True)
    assert (a.pix_to_face == b.pix_to_face).float().mean() > 0.995
    back = rasterize(v[None], f.flip(1), cam, cull_backfaces=True)     # reversed winding: now the far side shows
    assert (back.depth[back.mask] > 2.9).float().mean() > 0.9

# ---------------------------------------------------------------- normals and gradients
def test_vertex_normals_match_trimesh_area_weighted():
    v, f = random_mesh(9, 2)
    m = trimesh.Trimesh(v, f, process=False)
    ref = np.asarray(m.faces_sparse @ (m.face_normals * m.area_faces[:, None]))
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    ours = vertex_normals(torch.tensor(v)[None], torch.tensor(f))[0].numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-10)

def _tiny(dtype=torch.float64):
    v = torch.tensor([[[-0.6, -0.5, 2.0], [0.7, -0.4, 2.3], [0.1, 0.6, 2.1], [0.8, 0.53, 2.6]]], dtype=dtype)
    f = torch.tensor([[0, 1, 2], [1, 3, 2]])
    cam = _cam(np.eye(3), [0.05, 0.02, 0.1], [13.0, 13.5], [5.1, 4.9], (10, 10), dtype)
    return v, f, cam

def test_gradcheck_interpolation_wrt_vertices_and_attributes():
    v, f, cam = _tiny()
    attrs = torch.randn(1, 4, 2, dtype=torch.float64, requires_grad=True)
    v = v.clone().requires_grad_(True)
    fn = lambda v, a: interpolate(a, rasterize(v, f, cam), f)
    assert rasterize(v, f, cam).mask.sum() > 20
    assert torch.autograd.gradcheck(fn, (v, attrs), eps=1e-6, atol=1e-5)
    fd = lambda v: rasterize(v, f, cam).depth
    assert torch.autograd.gradcheck(fd, (v,), eps=1e-6, atol=1e-5)

def test_gradcheck_silhouettes():
    v, f, cam = _tiny()
    v = v.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: antialias_mask(rasterize(v, f, cam), f), (v,), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradcheck(lambda v: soft_mask(v, f, cam, sigma=0.7), (v,), eps=1e-6, atol=1e-5)
    g = torch.autograd.grad(antialias_mask(rasterize(v, f, cam), f).sum(), v)[0]
    assert g.abs().sum() > 0

def test_antialiased_mask_area_matches_polygon_area():
    # a large triangle: the antialiased coverage sums closer to the exact area than the hard mask does
    P = torch.tensor([[[3.3, 2.2, 1.0], [27.9, 6.1, 1.0], [9.4, 25.7, 1.0]]], dtype=torch.float64)
    fr = rasterize_screen(P, torch.tensor([[0, 1, 2]]), (30, 30), perspective=False)
    area = 0.5 * abs((27.9 - 3.3) * (25.7 - 2.2) - (9.4 - 3.3) * (6.1 - 2.2))
    aa = antialias_mask(fr, torch.tensor([[0, 1, 2]]))
    assert abs(aa.sum().item() - area) < abs(fr.mask.sum().item() - area) + 1e-9
    assert abs(aa.sum().item() - area) / area < 0.01

# ---------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors():
    v, f, cam = _tiny()
    with pytest.raises(InputError, match='vertices'): rasterize(v[0], f, cam)
    with pytest.raises(InputError, match='faces'): rasterize(v, torch.tensor([[0, 1, 4]]), cam)
    with pytest.raises(InputError, match='faces'): rasterize(v, torch.tensor([[0, -1, 2]]), cam)
    with pytest.raises(InputError, match='faces'): rasterize(v, f[:, :2], cam)
    with pytest.raises(InputError, match='integer'): rasterize(v, f.double(), cam)
    with pytest.raises(InputError, match='non-finite'): rasterize(torch.where(v > 2.5, float('nan'), v), f, cam)
    with pytest.raises(InputError, match='empty'): rasterize(v[:, :0], f[:0], cam)
    with pytest.raises(InputError, match='empty'): rasterize(v, f[:0], cam)
    with pytest.raises(InputError, match='camera batch'): rasterize(v.expand(2, -1, -1), f, cam)
    with pytest.raises(InputError, match='float32'): rasterize(v.float(), f, cam)
    with pytest.raises(InputError, match='image_size'): rasterize_screen(v, f, (0, 10))
    with pytest.raises(InputError, match='backend'): rasterize(v, f, cam, backend='opengl')
    with pytest.raises(InputError, match='sigma'): soft_mask(v, f, cam, sigma=0)

def test_pytorch3d_backend_reports_missing_package_or_agrees():
    v, f = random_mesh(6, 2)
    cam = random_camera(np.random.default_rng(6), (48, 48), torch.float32)
    V = torch.tensor(v, dtype=torch.float32)[None]
    if not pytorch3d_available():
        with pytest.raises(ImportError, match='pytorch3d'):
            rasterize(V, torch.tensor(f), cam, backend='pytorch3d')
        pytest.skip('pytorch3d is not installed: backend comparison skipped')
    a = rasterize(V, torch.tensor(f), cam)
    b = rasterize(V, torch.tensor(f), cam, backend='pytorch3d')
    assert (a.pix_to_face == b.pix_to_face).float().mean() >= 0.995

def test_pytorch3d_backend_agrees_on_builtin_head_deca_crop():
    # the benchmark scene (10k-face head filling a 256² DECA crop, float32, batch 4, several poses): pytorch3d's
    # rasterize_meshes must pick the same face as the torch z-buffer on ≥ 99.5% of pixels, culling on and off
    if not pytorch3d_available(): pytest.skip('pytorch3d is not installed: backend comparison skipped')
    builtin = pytest.importorskip('facebench.models.builtin')
    from facebench.render.gallery import face_camera
    model = builtin.builtin_head()
    g = torch.Generator().manual_seed(3)
    out = model(expression=torch.rand(4, model.n_expression, generator=g) * 0.7, batch_size=4)
    cam = face_camera(out.vertices, out.landmarks, 256, yaw=torch.tensor([-40., -10., 20., 45.]), pitch=torch.tensor([10., -5., 0., 15.]))
    for cull in (False, True):
        a = rasterize(out.vertices, out.faces, cam, cull_backfaces=cull)
        b = rasterize(out.vertices, out.faces, cam, backend='pytorch3d', cull_backfaces=cull)
        agree = (a.pix_to_face == b.pix_to_face).float().mean().item()
        both = (a.pix_to_face >= 0) & (a.pix_to_face == b.pix_to_face)
        print(f"cull={cull}: agreement {100 * agree:.3f}%, covered {(a.pix_to_face >= 0).float().mean():.2f}")
        assert (a.pix_to_face >= 0).float().mean() > 0.5 and agree >= 0.995
        # same face -> same barycentrics and depth (they are computed from the same screen-space triangle)
        assert torch.allclose(a.depth[both], b.depth[both]) and torch.allclose(a.bary[both], b.bary[both], atol=1e-5)
