"""facebench.metrics.geometry against independent references: trimesh's triangle kernel and proximity query,
scipy's Procrustes / Rotation.align_vectors / cKDTree, and analytic cases."""
import math, warnings
from pathlib import Path
import numpy as np
import pytest
import torch
from facebench.core import InputError
from facebench.render.raster import sphere_mesh
from facebench.rotations import axis_angle_to_matrix
from facebench.metrics.geometry import (point_to_surface, umeyama, icp, chamfer_distance, vertex_to_vertex, mesh_metrics,
                                        normal_angles, mne_facescape, completion_ratio, facescape_complete_rate, per_region,
                                        region_faces, check_units, SimilarityTransform)

trimesh = pytest.importorskip('trimesh')
ICT = Path('/work/shared/assets/ict-facekit/ict_facekit_light.npz')

def bumpy_sphere(seed=0, n_lat=20, n_lon=40):
    v, f = sphere_mesh(n_lat, n_lon, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    return v * (1 + 0.05 * torch.rand(v.shape[0], 1, generator=g, dtype=torch.float64)), f

def plane(n=12, size=1.0):
    xs = torch.linspace(-size / 2, size / 2, n, dtype=torch.float64)
    X, Y = torch.meshgrid(xs, xs, indexing='ij')
    v = torch.stack([X.flatten(), Y.flatten(), torch.zeros(n * n, dtype=torch.float64)], 1)
    i = torch.arange(n * n).reshape(n, n)
    a, b, c, d = i[:-1, :-1].flatten(), i[1:, :-1].flatten(), i[1:, 1:].flatten(), i[:-1, 1:].flatten()
    return v, torch.cat([torch.stack([a, b, c], 1), torch.stack([a, c, d], 1)])

def trimesh_brute(points, v, f):
    "Closest distances with trimesh's own per-triangle kernel, over every triangle (an independent exact reference)."
    tri = v.numpy()[f.numpy()]
    out = []
    for p in points.numpy():
        q = trimesh.triangles.closest_point(tri, np.repeat(p[None], len(tri), 0))
        out.append(np.linalg.norm(q - p, axis=1).min())
    return np.array(out)

@pytest.mark.parametrize('method', ['grid', 'kdtree', 'brute'])
def test_point_to_surface_matches_trimesh_triangle_kernel(method):
    v, f = bumpy_sphere()
    g = torch.Generator().manual_seed(1)
    pts = torch.randn(150, 3, generator=g, dtype=torch.float64) * 0.8
    d, q, fi = point_to_surface(pts, v, f, method=method)
    ref = trimesh_brute(pts, v, f)
    np.testing.assert_allclose(d.numpy(), ref, rtol=0, atol=1e-12)
    # the closest point lies on the reported face, at the reported distance
    tri = v[f[fi]].numpy()
    qq = trimesh.triangles.closest_point(tri, pts.numpy())
    np.testing.assert_allclose(q.numpy(), qq, atol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(pts.numpy() - q.numpy(), axis=1), d.numpy(), atol=1e-12)

def test_point_to_surface_vs_trimesh_proximity_on_real_shaped_mesh():
    if ICT.exists():
        from facebench.models.ict import load_ict
        m = load_ict(ICT, dtype=torch.float64)
        out = m(batch_size=1); v, f = out.vertices[0], out.faces
    else:
        v, f = bumpy_sphere(n_lat=40, n_lon=80)
    g = torch.Generator().manual_seed(2)
    ext = float((v.max(0).values - v.min(0).values).max())
    pts = v[torch.randint(0, v.shape[0], (3000,), generator=g)] + 0.02 * ext * torch.randn(3000, 3, generator=g, dtype=torch.float64)
    d = point_to_surface(pts, v, f).distances.numpy()
    _, dt, _ = trimesh.proximity.closest_point(trimesh.Trimesh(v.numpy(), f.numpy(), process=False), pts.numpy())
    # trimesh's query picks among near-ties by normal, so it can be slightly farther; it is never closer
    assert (d <= dt + 1e-12).all()
    close = np.abs(d - dt) <= 1e-9 * ext
    assert close.mean() > 0.9, close.mean()
    np.testing.assert_allclose(d, dt, atol=1e-3 * ext)

def test_point_to_surface_far_points_degenerate_faces_batch_float32_and_grad():
    v, f = bumpy_sphere(3)
    f2 = torch.cat([f, torch.tensor([[0, 0, 1], [5, 6, 6]])])        # degenerate triangles included
    pts = torch.randn(40, 3, dtype=torch.float64) * 6                  # far away: the certificate falls back
    d, _, _ = point_to_surface(pts, v, f2)
    np.testing.assert_allclose(d.numpy(), trimesh_brute(pts, v, f2), atol=1e-12)
    # batched = per item
    vb = torch.stack([v, 1.3 * v]); pb = torch.stack([pts, pts * 0.5])
    db = point_to_surface(pb, vb, f).distances
    for b in range(2): torch.testing.assert_close(db[b], point_to_surface(pb[b], vb[b], f).distances)
    d32 = point_to_surface(pts.float(), v.float(), f).distances
    assert d32.dtype == torch.float32
    np.testing.assert_allclose(d32.numpy(), point_to_surface(pts, v, f).distances.numpy(), rtol=1e-5)
    # gradient of the distance w.r.t. the point is the unit direction away from the surface
    p = pts[:5].clone().requires_grad_(True)
    dd, q, _ = point_to_surface(p, v, f)
    dd.sum().backward()
    torch.testing.assert_close(p.grad, (pts[:5] - q.detach()) / dd.detach()[:, None])

METHODS = ('grid', 'kdtree', 'brute')

@pytest.mark.parametrize('scale', [0.0, 1e-4, 0.01, 0.05, 0.3, 5.0])
def test_point_to_surface_every_method_at_every_distance(scale):
    "From points on the vertices (scale 0) to points far outside: each method equals trimesh's kernel over all faces."
    v, f = bumpy_sphere(7, 16, 32)
    g = torch.Generator().manual_seed(3)
    pts = v[torch.randint(0, v.shape[0], (200,), generator=g)] + scale * torch.randn(200, 3, generator=g, dtype=torch.float64)
    ref = trimesh_brute(pts, v, f)
    for method in METHODS:
        np.testing.assert_allclose(point_to_surface(pts, v, f, method=method).distances.numpy(), ref, rtol=0, atol=1e-12)

def soup(n=1500, seed=0):
    "Well-shaped triangles with random orientations, sizes over three decades, in the unit cube, plus two huge ones."
    from scipy.spatial.transform import Rotation
    g = np.random.default_rng(seed)
    base = np.array([[0., 0, 0], [1, 0, 0], [0.4, 0.8, 0]]) - [0.47, 0.27, 0]
    size = 10 ** g.uniform(-3, -0.5, n)
    tri = np.einsum('nij,kj->nki', Rotation.random(n, random_state=seed).as_matrix(), base) * size[:, None, None]
    tri = tri + g.uniform(0, 1, (n, 1, 3))
    huge = np.array([[[-5., -5, 0.5], [5, -5, 0.5], [0, 5, 0.5]], [[0.5, -5, -5], [0.5, 5, -5], [0.5, 0, 5]]])
    tri = np.concatenate([tri, huge])
    return torch.from_numpy(tri.reshape(-1, 3)), torch.arange(3 * len(tri)).reshape(-1, 3)

def test_point_to_surface_dense_queries_on_a_soup_of_sizes():
    "Many points near small and large faces (the grid's main path, with faces much larger than its cells) vs trimesh."
    from facebench.metrics.geometry import _face_index, _grid_faces, _grid_levels
    v, f = soup()
    g = torch.Generator().manual_seed(5)
    tri = v[f]
    near = tri.mean(1)[torch.randint(0, len(f), (3000,), generator=g)]
    pts = torch.cat([near + 0.002 * torch.randn(3000, 3, generator=g, dtype=torch.float64),
                     torch.rand(500, 3, generator=g, dtype=torch.float64)])
    d = point_to_surface(pts, v, f).distances.numpy()
    sub = np.r_[0:400, 3000:3100]                                # trimesh's per-face loop is slow: check a subset
    np.testing.assert_allclose(d[sub], trimesh_brute(pts[sub], v, f), rtol=0, atol=1e-12)
    np.testing.assert_allclose(d, point_to_surface(pts, v, f, method='brute').distances.numpy(), rtol=0, atol=1e-12)
    # the grid's certificate settles nearly all of these points on its first level (no silent fallback)
    I = _face_index(tri.numpy()); lv = _grid_levels(pts.numpy(), I)
    assert 0.9 < _grid_faces(pts.numpy(), I, *lv[0])[1].mean()

def test_point_to_surface_zero_area_faces_count_through_their_edges():
    "Collinear and single-point faces: the distance is to their segment / point (analytic), for every method."
    v, f = plane(6, 1.0)                                         # z = 0
    n = v.shape[0]
    extra = torch.tensor([[0., 0, 1], [0, 0, 2], [0, 0, 1.5], [0.3, 0.3, 0.7]], dtype=torch.float64)
    v2 = torch.cat([v, extra]); f2 = torch.cat([f, torch.tensor([[n, n + 1, n + 2], [n + 3, n + 3, n + 3]])])
    pts = torch.tensor([[0.1, 0, 1.6], [0, 0, 2.5], [0.3, 0.3, 0.9], [0.2, 0.1, 0.3]], dtype=torch.float64)
    expect = torch.tensor([0.1, 0.5, 0.2, 0.3], dtype=torch.float64)
    for method in METHODS:
        d, q, fi = point_to_surface(pts, v2, f2, method=method)
        torch.testing.assert_close(d, expect, rtol=0, atol=1e-12)
        assert fi[:3].tolist() == [len(f), len(f), len(f) + 1]
        torch.testing.assert_close((pts - q).norm(dim=-1), d, rtol=0, atol=1e-12)

@pytest.mark.parametrize('method', ['grid', 'brute'])
def test_point_to_surface_gradients_match_finite_differences(method):
    "Distances are differentiable in points and vertices (recomputed on the winning face): gradcheck in float64."
    v, f = bumpy_sphere(2, 8, 16)
    g = torch.Generator().manual_seed(6)
    pts = (v[torch.randint(0, v.shape[0], (30,), generator=g)] * 1.05 + 0.01 * torch.randn(30, 3, generator=g, dtype=torch.float64))
    fn = lambda p, w: point_to_surface(p, w, f, method=method).distances
    assert torch.autograd.gradcheck(fn, (pts.clone().requires_grad_(True), v.clone().requires_grad_(True)), eps=1e-7, atol=1e-6)
    # with and without gradients the same answers
    p = pts.clone().requires_grad_(True)
    a, b = point_to_surface(p, v, f, method=method), point_to_surface(pts, v, f, method=method)
    torch.testing.assert_close(a.distances.detach(), b.distances, rtol=0, atol=1e-14)
    torch.testing.assert_close(a.closest.detach(), b.closest, rtol=0, atol=1e-14)

def test_point_to_surface_errors():
    v, f = bumpy_sphere()
    with pytest.raises(InputError, match='empty'): point_to_surface(torch.zeros(0, 3), v, f)
    with pytest.raises(InputError, match='non-finite'): point_to_surface(torch.tensor([[0., float('inf'), 0.]]), v, f)
    with pytest.raises(InputError, match='outside'): point_to_surface(torch.zeros(2, 3), v, f + 10_000)
    with pytest.raises(InputError, match='integer'): point_to_surface(torch.zeros(2, 3), v, f.double())
    with pytest.raises(InputError, match=r'\(N,3\)|shape'): point_to_surface(torch.zeros(2, 2), v, f)
    with pytest.raises(InputError, match='method'): point_to_surface(torch.zeros(2, 3), v, f, method='bvh')

def test_umeyama_vs_scipy():
    from scipy.linalg import orthogonal_procrustes
    from scipy.spatial.transform import Rotation
    g = np.random.default_rng(0)
    X = g.normal(size=(30, 3)); R = Rotation.from_rotvec([0.4, -0.2, 1.1]).as_matrix()
    Y = X @ R.T + [0.3, -1, 2] + 0.01 * g.normal(size=(30, 3))
    fit = umeyama(X, Y, scale=False)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Rs, _ = orthogonal_procrustes(Xc, Yc)                 # Xc @ Rs ≈ Yc
    np.testing.assert_allclose(fit.transform.rotation.numpy(), Rs.T, atol=1e-12)
    Ra, _ = Rotation.align_vectors(Yc, Xc)                # Ra applied to Xc ≈ Yc
    np.testing.assert_allclose(fit.transform.rotation.numpy(), Ra.as_matrix(), atol=1e-10)
    rms = np.sqrt(((X @ Rs + (Y.mean(0) - X.mean(0) @ Rs) - Y) ** 2).sum(1).mean())
    assert abs(float(fit.residual) - rms) < 1e-12
    # similarity: least-squares scale = trace(S)/var(X) (closed form via the SVD computed independently)
    sfit = umeyama(X, 2.5 * Y)
    U, S, Vt = np.linalg.svd((2.5 * Yc).T @ Xc)
    np.testing.assert_allclose(float(sfit.transform.scale), S.sum() / (Xc ** 2).sum(), rtol=1e-12)
    # batched
    bt = umeyama(torch.stack([torch.from_numpy(X)] * 2), torch.stack([torch.from_numpy(Y), torch.from_numpy(2 * Y)]))
    np.testing.assert_allclose(bt.transform.scale.numpy(), [float(umeyama(X, Y).transform.scale), float(umeyama(X, 2 * Y).transform.scale)])

def test_umeyama_reflection_and_errors():
    g = np.random.default_rng(1)
    X = g.normal(size=(20, 3)); Y = X * [1, 1, -1]              # a mirror image
    assert float(np.linalg.det(umeyama(X, Y).transform.rotation.numpy())) > 0
    r = umeyama(X, Y, allow_reflection=True)
    assert float(np.linalg.det(r.transform.rotation.numpy())) < 0 and float(r.residual) < 1e-12
    with pytest.raises(InputError, match='at least 3'): umeyama(X[:2], Y[:2])
    with pytest.raises(InputError, match='N='): umeyama(X, Y[:10])
    with pytest.raises(InputError, match='non-finite'): umeyama(np.where(X > 1, np.nan, X), Y)

@pytest.mark.parametrize('mode,scale', [('point', False), ('plane', False), ('plane', True), ('point', True)])
def test_icp_recovers_transform(mode, scale):
    v, f = bumpy_sphere(4, 16, 32)
    v = v * torch.tensor([1.0, 0.7, 0.5], dtype=torch.float64)     # an ellipsoid: no rotational symmetry to slide along
    R = axis_angle_to_matrix(torch.tensor([0.04, -0.06, 0.05], dtype=torch.float64))
    s = 1.04 if scale else 1.0
    src = v[::2]
    moved = s * src @ R.T + torch.tensor([0.03, 0.02, -0.04], dtype=torch.float64)
    r = icp(moved, v, f, mode=mode, scale=scale, max_iterations=150 if mode == 'point' else 20)
    tol = 2e-5 if mode == 'plane' else 2e-3      # point-to-point ICP converges linearly, point-to-plane quadratically
    torch.testing.assert_close(r.aligned, src, atol=tol, rtol=0)
    assert float(r.residual) < tol and r.distances.shape == (src.shape[0],)

def test_icp_nearest_vertex_mode_and_errors():
    v, _ = bumpy_sphere(5, 30, 60)
    R = axis_angle_to_matrix(torch.tensor([0.03, 0.0, 0.02], dtype=torch.float64))
    r = icp(v @ R.T, v)                                      # same point set: nearest-vertex ICP converges exactly
    torch.testing.assert_close(r.aligned, v, atol=1e-9, rtol=0)
    with pytest.raises(InputError, match='plane'): icp(v, v, mode='plane')

def test_chamfer_analytic_and_cKDTree():
    from scipy.spatial import cKDTree
    v, f = sphere_mesh(40, 80, dtype=torch.float64)
    c = chamfer_distance(v, 1.2 * v, a_faces=f, b_faces=f)
    assert 0.19 < float(c.chamfer) <= 0.2 + 1e-12           # radius gap 0.2, inscribed polygons make it slightly less
    g = np.random.default_rng(2); A, B = g.normal(size=(300, 3)), g.normal(size=(200, 3))
    cp = chamfer_distance(A, B)
    ref = 0.5 * (cKDTree(B).query(A)[0].mean() + cKDTree(A).query(B)[0].mean())
    assert abs(float(cp.chamfer) - ref) < 1e-12
    sq = chamfer_distance(A, B, squared=True)
    assert abs(float(sq.chamfer) - 0.5 * ((cKDTree(B).query(A)[0] ** 2).mean() + (cKDTree(A).query(B)[0] ** 2).mean())) < 1e-12
    assert abs(float(cp.pooled_mean) - np.concatenate([cKDTree(B).query(A)[0], cKDTree(A).query(B)[0]]).mean()) < 1e-12

def test_mesh_metrics_analytic_plane_cases():
    v, f = plane(15, 0.2)                                      # 20 cm square in metres
    shifted = v + torch.tensor([0, 0, 0.001], dtype=torch.float64)   # 1 mm along the normal
    m = mesh_metrics(shifted, f, v, f, units='m', align='none')
    assert abs(m.cd_mm - 1.0) < 1e-9 and m.mne_rad < 1e-9 and m.cr_2mm == 1.0
    assert mesh_metrics(shifted, f, v, f, units='m', align='none', cr_threshold_mm=0.999).cr_2mm == 0.0
    assert mesh_metrics(shifted, f, v, f, units='m', align='rigid').cd_mm < 1e-9     # rigid alignment removes the shift
    # tilt the prediction by theta about x: every normal is theta off
    th = 0.2
    R = axis_angle_to_matrix(torch.tensor([th, 0, 0], dtype=torch.float64))
    mt = mesh_metrics(v @ R.T, f, v, f, units='m', align='none')
    assert abs(mt.mne_rad - th) < 1e-9
    # different topology: the GT subdivided (same surface) -> CD 0 and MNE 0 via closest-face normals
    v2, f2 = plane(29, 0.2)
    md = mesh_metrics(v2, f2, v, f, units='m', align='none')
    assert md.cd_mm < 1e-9 and md.mne_rad < 1e-9

def test_mesh_metrics_per_region_and_errors():
    v, f = plane(15, 0.2)
    bump = v.clone(); left = v[:, 0] < 0
    bump[left, 2] += 0.003                                     # 3 mm on the left half only
    m = mesh_metrics(bump, f, v, f, units='m', align='none', regions={'left': torch.nonzero(left)[:, 0], 'right': torch.nonzero(~left)[:, 0]})
    assert abs(m.per_region['right']['cr_2mm'] - 1.0) < 1e-12 and m.per_region['left']['cr_2mm'] < 0.2
    assert m.per_region['left']['cd_mm'] > m.per_region['right']['cd_mm']
    with pytest.raises(InputError, match='align'): mesh_metrics(v, f, v, f, align='affine')
    with pytest.raises(InputError, match='region'): mesh_metrics(v, f, v, f, regions={'x': torch.tensor([10_000])})
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        mesh_metrics(v * 1000, f, v * 1000, f, units='m', align='none')       # mm data called metres
    assert any('smaller unit' in str(x.message) for x in w)

def test_vertex_to_vertex_and_units():
    a = torch.zeros(5, 3, dtype=torch.float64); b = a + torch.tensor([3., 4., 0.], dtype=torch.float64)
    torch.testing.assert_close(vertex_to_vertex(a, b), torch.full((5,), 5.0, dtype=torch.float64))
    with pytest.raises(InputError, match='same topology'): vertex_to_vertex(a, b[:4])
    with pytest.raises(InputError, match='non-finite'): vertex_to_vertex(a, b.masked_fill(b > 3.5, float('nan')))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        check_units(torch.rand(20, 3) * 0.002, 'mm')         # 2 micrometres of "mm": surely metres
    assert 'larger unit' in str(w[0].message)
    with pytest.raises(InputError, match='units'): check_units(a, 'inch')
    with pytest.raises(InputError, match='empty'): vertex_to_vertex(a[:0], b[:0])

def test_normal_and_ratio_bad_input():
    n = torch.tensor([[0., 0., 1.], [1., 0., 0.]])
    with pytest.raises(InputError, match='empty'): normal_angles(n[:0], n[:0])
    with pytest.raises(InputError, match='non-finite'): normal_angles(n.masked_fill(n > 0.5, float('nan')), n)
    with pytest.raises(InputError, match='non-finite'): mne_facescape(n, n.masked_fill(n > 0.5, float('inf')))
    with pytest.raises(InputError): normal_angles(n, n[:1])
    with pytest.raises(InputError, match='NaN'): completion_ratio(torch.tensor([float('nan'), 1.0]))

def test_normal_metrics_hand_computed():
    n1 = torch.tensor([[0., 0., 1.], [1., 0., 0.]]); n2 = torch.tensor([[0., 1., 0.], [1., 0., 0.]])
    torch.testing.assert_close(normal_angles(n1, n2), torch.tensor([math.pi / 2, 0.]))
    # FaceScape's transform: (0,0,1)->(1,1,2)/sqrt6, (0,1,0)->(1,2,1)/sqrt6, cos = 5/6
    expect = (math.acos(5 / 6) + 0) / 2
    assert abs(float(mne_facescape(n1, n2)) - expect) < 1e-6
    assert completion_ratio(torch.tensor([0.5, 2.0, 2.5, 1.0])) == 0.75
    assert completion_ratio(torch.tensor([0.5, 2.0, 2.5, 1.0]), strict=True) == 0.5
    gm = torch.tensor([[1., 2.], [0., 3.]]); pm = torch.tensor([[1., 0.], [5., 3.]])
    assert facescape_complete_rate(gm, pm) == 2 / 3
    with pytest.raises(InputError): facescape_complete_rate(gm, pm[:1])

def test_per_region_and_region_faces():
    vals = torch.arange(6, dtype=torch.float64)
    r = per_region(vals, {'a': [0, 1], 'b': torch.tensor([False, False, True, True, True, True])})
    assert r == {'all': 2.5, 'a': 0.5, 'b': 3.5}
    with pytest.raises(InputError, match='indexes vertex'): per_region(vals, {'c': [9]})
    f = torch.tensor([[0, 1, 2], [2, 3, 4], [3, 4, 5]])
    torch.testing.assert_close(region_faces(f, [2, 3, 4, 5]), f[1:])

def test_similarity_transform_algebra():
    R = axis_angle_to_matrix(torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    T = SimilarityTransform(R, torch.tensor([1., 2., 3.], dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64))
    x = torch.randn(7, 3, dtype=torch.float64)
    torch.testing.assert_close(T.inverse().apply(T.apply(x)), x)
    M = T.matrix()
    torch.testing.assert_close(T.apply(x), x @ M[:3, :3].T + M[:3, 3])
    torch.testing.assert_close(T.compose(T).apply(x), T.apply(T.apply(x)))
