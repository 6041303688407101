"""NoW / REALY / Multiface protocol pieces against hand-computed values and re-typed reference formulas."""
import contextlib
import numpy as np
import pytest
import torch
from facebench.core import InputError
from facebench.render.raster import sphere_mesh
from facebench.rotations import axis_angle_to_matrix
from facebench.metrics.geometry import umeyama
from facebench.metrics.protocols import (NOW_LANDMARKS_68, now_crop, now_evaluate, now_statistics, scan_to_mesh_icp, realy_fit_rt,
                                         realy_region_icp, realy_region_errors, REALY_KEYPOINTS, multiface_table, realy_nicp,
                                         REALYNICPConfig, realy_bidirectional_error, realy_evaluate, realy_rigid_region_errors,
                                         realy_statistics)

def ellipsoid(n_lat=20, n_lon=40):
    v, f = sphere_mesh(n_lat, n_lon, dtype=torch.float64)
    return v * torch.tensor([80., 100., 70.], dtype=torch.float64), f

def matlab_procrustes(X, Y):
    "NoW's MATLAB-port similarity Procrustes (scaling=True, reflection='best'), re-typed from its description."
    muX, muY = X.mean(0), Y.mean(0)
    X0, Y0 = X - muX, Y - muY
    nX, nY = np.linalg.norm(X0), np.linalg.norm(Y0)
    X0, Y0 = X0 / nX, Y0 / nY
    U, S, Vt = np.linalg.svd(X0.T @ Y0)
    T = Vt.T @ U.T
    b = S.sum() * nX / nY
    c = muX - b * muY @ T
    return b, T, c      # Y mapped as b * Y @ T + c

def test_now_landmark_indices():
    assert NOW_LANDMARKS_68 == (36, 39, 42, 45, 33, 48, 54)
    assert tuple(17 + i for i in [19, 22, 25, 28, 16, 31, 37]) == NOW_LANDMARKS_68   # DECA/MICA's lmk51 spelling

def test_now_crop_radius_hand_computed():
    L = np.array([[-40, 0, 0], [-10, 0, 0], [10, 0, 0], [40, 0, 0], [0, -30, 0], [-20, -50, 0], [20, -50, 0]], float)
    # bridge (0,0,0), bottom (0,-30,0): centre (0,-21,0); radius 1.4 * (80 + 30) / 2 = 77
    pts = np.array([[0, -21 + 76.9, 0], [0, -21 + 77.1, 0], [76.9, -21, 0], [0, -21, -77.5]])
    v, f, keep = now_crop(pts, None, L)
    assert keep.tolist() == [True, False, True, False] and f is None
    sv, sf = ellipsoid()
    v, f, keep = now_crop(sv, sf, L)
    assert int(f.max()) < v.shape[0] and bool(keep[sf[~keep[sf].all(1)]].all(1).logical_not().all())
    with pytest.raises(InputError, match=r'\(7, 3\)'): now_crop(pts, None, L[:6])
    with pytest.raises(InputError, match='no scan vertex'): now_crop(pts + 1e6, None, L)

def test_now_procrustes_equals_matlab_port_including_reflection():
    g = np.random.default_rng(0)
    X = g.normal(size=(7, 3)) * 30
    for Y in (X @ np.diag([1, 1, -1]) * 0.001 + 0.1, (X @ axis_angle_to_matrix(torch.tensor([0.3, 0.2, 0.1], dtype=torch.float64)).numpy().T) * 0.001 + g.normal(size=(7, 3)) * 1e-4):
        b, T, c = matlab_procrustes(X, Y)
        fit = umeyama(Y, X, scale=True, allow_reflection=True).transform
        np.testing.assert_allclose(fit.apply(torch.from_numpy(Y)).numpy(), b * Y @ T + c, atol=1e-9)

def test_now_evaluate_recovers_similarity_and_measures_a_known_offset():
    scan, f = ellipsoid(24, 48)
    lm = torch.tensor([10, 40, 70, 100, 300, 500, 530])
    R = axis_angle_to_matrix(torch.tensor([0.1, 0.3, -0.2], dtype=torch.float64))
    pred = (scan / 1000) @ R.T + torch.tensor([0.05, 0.0, -0.02], dtype=torch.float64)
    r = now_evaluate(pred, f, pred[lm], scan, f, scan[lm])
    assert r.mean < 1e-6 and r.distances.shape[0] > 0
    # a prediction 2 mm "fatter" along the normals of a sphere: the similarity ICP absorbs a pure scale ...
    sv, sf = sphere_mesh(24, 48, dtype=torch.float64); sph = sv * 100
    assert now_evaluate(sph * 1.02 / 1000, sf, sph[lm] * 1.02 / 1000, sph, sf, sph[lm]).mean < 1e-6
    # ... the metrical variant does not: the scale stays the unit factor and a residual remains (rigid motion can only
    # partly fit a 102 mm sphere cap onto a 100 mm one)
    rm = now_evaluate(sph * 1.02 / 1000, sf, sph[lm] * 1.02 / 1000, sph, sf, sph[lm], metrical=True, pred_unit='m')
    assert abs(float(rm.transform.scale) - 1000) < 1e-9 and 0.05 < rm.mean < 2.0
    st = now_statistics([r.distances, rm.distances])
    pooled = np.concatenate([r.distances.numpy(), rm.distances.numpy()])
    assert st == {'median': float(np.median(pooled)), 'mean': float(pooled.mean()), 'std': float(pooled.std())}
    with pytest.raises(InputError, match='pred_unit'): now_evaluate(pred, f, pred[lm], scan, f, scan[lm], metrical=True, pred_unit='ft')
    with pytest.raises(InputError, match='empty'): now_statistics([])
    with pytest.raises(InputError, match='no distance'): now_statistics([torch.zeros(0)])
    with pytest.raises(InputError, match='NaN'): now_statistics([torch.tensor([1.0, float('nan')])])

def test_realy_fit_rt_l1_scale_hand_computed():
    s = torch.tensor([[1., 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], dtype=torch.float64)
    t = 2 * s + torch.tensor([1., 2., 3.], dtype=torch.float64)
    T = realy_fit_rt(s, t)
    assert abs(float(T.scale) - 2.0) < 1e-12
    torch.testing.assert_close(T.apply(s), t)
    # L1 scale differs from the least-squares one for anisotropic noise-free scalings: sum|t1| / sum|s1|
    s2 = torch.tensor([[2., 0, 0], [-2, 0, 0], [0, 1, 0], [0, -1, 0]], dtype=torch.float64)
    t2 = s2 * torch.tensor([1.0, 3.0, 1.0], dtype=torch.float64)
    assert abs(float(realy_fit_rt(s2, t2).scale) - (4 + 6) / (4 + 2)) < 1e-12

def submesh(v, f, keep):
    "The vertices `keep` (bool) and the triangles whose 3 vertices are kept, re-indexed."
    new = torch.full((v.shape[0],), -1, dtype=torch.long); new[keep] = torch.arange(int(keep.sum()))
    return v[keep], new[f[keep[f].all(1)]]

def grid_patch(n, size, z=None):
    u = torch.linspace(-size / 2, size / 2, n, dtype=torch.float64)
    x, y = torch.meshgrid(u, u, indexing='ij')
    v = torch.stack([x.reshape(-1), y.reshape(-1), torch.zeros(n * n, dtype=torch.float64)], 1)
    if z is not None: v[:, 2] = z(v)
    i = torch.arange(n - 1)
    a = (i[:, None] * n + i[None, :]).reshape(-1)
    return v, torch.cat([torch.stack([a, a + n, a + 1], 1), torch.stack([a + 1, a + n, a + n + 1], 1)])

def keypoints_in_regions(n_vertices, seed, **region_masks):
    "85 random vertex indices, those of each named REALY keypoint set drawn inside its region (as REALY's keypoints are)."
    g = torch.Generator().manual_seed(seed)
    kp = torch.randperm(n_vertices, generator=g)[:85]
    for name, mask in region_masks.items():
        inside = torch.nonzero(mask)[:, 0]
        sel = REALY_KEYPOINTS[name]
        kp[sel] = inside[torch.randint(len(inside), (len(sel),), generator=g)]
    return kp

def test_realy_region_pipeline_on_synthetic_gt():
    scan, f = ellipsoid(20, 40)
    kp_idx = keypoints_in_regions(scan.shape[0], 0, nose=scan[:, 2] > 50)
    R = axis_angle_to_matrix(torch.tensor([0.05, -0.05, 0.1], dtype=torch.float64))
    pred = 0.9 * scan @ R.T + 3.0
    nose, cheek = submesh(scan, f, scan[:, 2] > 50), submesh(scan, f, scan[:, 0] > 40)
    e = realy_region_errors(pred, f, pred[kp_idx], {'nose': nose, 'cheek': cheek}, scan[kp_idx])     # the published protocol
    assert e['nose'] < 1e-6 and e['cheek'] < 1e-6 and abs(e['all'] - (e['nose'] + e['cheek']) / 2) < 1e-12
    er = realy_rigid_region_errors(pred, f, pred[kp_idx], {'nose': nose[0], 'cheek': cheek[0]}, scan[kp_idx])   # vertices suffice
    assert er['nose'] < 1e-6 and er['cheek'] < 1e-6
    with pytest.raises(InputError, match='85'): realy_region_errors(pred, f, pred[:80], {'nose': nose}, scan[:80])
    with pytest.raises(InputError, match='region'): realy_region_errors(pred, f, pred[kp_idx], {'ear': nose}, scan[kp_idx])
    with pytest.raises(InputError, match='faces'): realy_region_errors(pred, f, pred[kp_idx], {'nose': nose[0]}, scan[kp_idx])
    with pytest.raises(InputError, match='metrical_scale'): realy_region_errors(pred, f, pred[kp_idx], {'nose': nose}, scan[kp_idx], metrical_scale=-1.0)
    with pytest.raises(InputError, match='empty'): realy_region_errors(pred, f, pred[kp_idx], {}, scan[kp_idx])
    with pytest.raises(InputError, match='entries'): realy_region_errors(pred, f, pred[kp_idx], {'nose': nose}, scan[kp_idx], pred_vertex_mask=np.ones(5))
    with pytest.raises(InputError, match='keeps no triangle'):
        realy_region_errors(pred, f, pred[kp_idx], {'nose': nose}, scan[kp_idx], pred_vertex_mask=np.zeros(scan.shape[0]))
    nan_nose = (nose[0].clone().index_fill_(0, torch.tensor([0]), float('nan')), nose[1])
    with pytest.raises(InputError, match='non-finite'): realy_region_errors(pred, f, pred[kp_idx], {'nose': nan_nose}, scan[kp_idx])
    # the template mask only restricts the evaluation surface: masking out the far side changes nothing here
    front = (pred[:, 2] - pred[:, 2].min()) > 0.3 * (pred[:, 2].max() - pred[:, 2].min())
    em = realy_region_errors(pred, f, pred[kp_idx], {'nose': nose}, scan[kp_idx], pred_vertex_mask=front.numpy())
    assert em['nose'] < 1e-6

def test_realy_region_icp_recovers_a_rigid_offset():
    scan, f = ellipsoid(24, 48)
    region = scan[scan[:, 2] > 40]
    kp = torch.nonzero(scan[:, 2] > 40)[:12, 0]
    R = axis_angle_to_matrix(torch.tensor([0.02, -0.03, 0.04], dtype=torch.float64))
    pred = scan @ R.T + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    assert float((pred - scan).norm(dim=-1).max()) > 5
    V, K = realy_region_icp(pred, f, pred[kp], region, scan[kp])          # REALY's stop: |Δ mean squared residual| < 1e-6
    assert float((V - scan).norm(dim=-1).max()) < 0.1
    V, K = realy_region_icp(pred, f, pred[kp], region, scan[kp], tol=1e-14, max_iterations=500)
    assert float((V - scan).norm(dim=-1).max()) < 1e-4 and float((K - scan[kp]).norm(dim=-1).max()) < 1e-4
    with pytest.raises(InputError, match='must match'): realy_region_icp(pred, f, pred[kp], region, scan[kp[:5]])

def test_realy_published_error_of_a_local_non_rigid_warp():
    # the prediction is the GT with a smooth bump of height 4 on the nose region only: the rigid steps cannot remove it
    scan, f = ellipsoid(40, 80)
    n = torch.nn.functional.normalize(scan / torch.tensor([80., 100., 70.], dtype=torch.float64) ** 2, dim=-1)   # ellipsoid normals
    centre = torch.tensor([0., 0., 70.], dtype=torch.float64)
    h = 4.0 * torch.exp(-((scan - centre) ** 2).sum(-1) / 15.0 ** 2)
    pred = scan + h[:, None] * n
    kp_idx = keypoints_in_regions(scan.shape[0], 1, nose=(scan - centre).norm(dim=-1) < 25, forehead=scan[:, 1] > 80)
    nose = submesh(scan, f, (scan - centre).norm(dim=-1) < 25)
    forehead = submesh(scan, f, scan[:, 1] > 80)
    r = realy_evaluate(pred, f, scan[kp_idx], {'nose': nose, 'forehead': forehead}, scan[kp_idx])
    # independent reference: trimesh's closest points of the GT nose vertices on the same aligned prediction
    trimesh = pytest.importorskip('trimesh')
    tm = trimesh.Trimesh(r.aligned['nose'].numpy(), f.numpy(), process=False)
    ref = trimesh.proximity.closest_point(tm, nose[0].numpy())[1]
    # on this gentle bump the deformed scan lands near its own closest points, so the error is close to the
    # point-to-surface distance (it is not equal: correspondences slide tangentially with the deformation)
    assert abs(r.errors['nose'] - ref.mean()) < 0.08 * ref.mean(), (r.errors['nose'], ref.mean())
    assert 0.5 < r.errors['nose'] < 4.0 and r.errors['forehead'] < 0.05
    assert r.deformed['nose'].shape == nose[0].shape and r.per_vertex['nose'].shape == (nose[0].shape[0],)
    st = realy_statistics([r.errors, {k: 2 * v for k, v in r.errors.items()}])
    assert abs(st['mean']['nose'] - 1.5 * r.errors['nose']) < 1e-12 and abs(st['std']['nose'] - np.std([1, 2], ddof=1) * r.errors['nose']) < 1e-12
    assert abs(st['all'] - (st['mean']['nose'] + st['mean']['forehead']) / 2) < 1e-12 and 'cheek' not in st['mean']
    with pytest.raises(InputError, match='empty'): realy_statistics([])

def test_realy_nicp_offset_and_bump_analytic():
    S, Sf = grid_patch(12, 30.0)
    P, Pf = grid_patch(31, 50.0)
    # a parallel surface 1.5 above: the scan translates onto it, the error is exactly 1.5 (with and without keypoints)
    kp = [0, 11, 60, 132, 143]
    up = torch.tensor([0., 0., 1.5], dtype=torch.float64)
    for args in ((None, None), (S[kp] + up, S[kp])):
        d, Sd = realy_bidirectional_error(P + up, Pf, S, Sf, *args)
        torch.testing.assert_close(Sd, S + up, atol=1e-6, rtol=0)
        torch.testing.assert_close(d, torch.full_like(d, 1.5), atol=1e-6, rtol=0)
    # a smooth bump 2·exp(-r²/15²): the error is close to the mean bump height at the scan vertices
    bump = lambda v: 2.0 * torch.exp(-(v[:, 0] ** 2 + v[:, 1] ** 2) / 15.0 ** 2)
    Pb, _ = grid_patch(31, 50.0, z=bump)
    d, Sd = realy_bidirectional_error(Pb, Pf, S, Sf)
    assert abs(float(d.mean()) - float(bump(S).mean())) < 0.03 * float(bump(S).mean())
    # the stiff deformation brings the scan much closer to the bump than it was (not onto it: α ≥ 50·e^-1 keeps it smooth)
    assert float((Sd[:, 2] - bump(Sd)).abs().mean()) < 0.25 * float(bump(S).mean())
    with pytest.raises(InputError, match='both'): realy_bidirectional_error(Pb, Pf, S, Sf, S[kp], None)
    with pytest.raises(InputError, match='keypoint_index'): realy_nicp(S, Sf, Pb, [0, 999], S[:2])
    with pytest.raises(InputError, match='rows'): realy_nicp(S, Sf, Pb, [0, 1], S[:3])

def dense_nicp(S, F, T, kp_idx=None, kp_tgt=None, eps=1.0, gamma=1.0, alpha=50.0, alpha2=150.0, kp_w=50.0, floor=1.0):
    "REALY's NICP re-typed from its description with dense matrices, brute-force NN and np.linalg.lstsq on the stacked system."
    n = len(S)
    edges = sorted({tuple(sorted((int(a), int(b)))) for t in F for a, b in ((t[0], t[1]), (t[0], t[2]), (t[1], t[2]))})
    M = np.zeros((len(edges), n))
    for k, (i, j) in enumerate(edges): M[k, i], M[k, j] = 1.0, -1.0
    A1, A1k = np.kron(M, np.diag([1, 1, 1, gamma])), np.kron(M, np.diag([2, 2, 3, 2 * gamma]))
    def D(v):
        out = np.zeros((n, 4 * n))
        for i in range(n): out[i, 4 * i:4 * i + 4] = [*v[i], 1.0]
        return out
    def nn(v):
        d = np.linalg.norm(v[:, None] - T[None], axis=-1)
        j = d.argmin(1)
        return d[np.arange(n), j], j
    cur, X, Xp, count = S.copy(), np.ones((4 * n, 3)), np.zeros((4 * n, 3)), 0
    stages = 4 if kp_idx is not None else 3
    for k in range(stages):
        if kp_idx is not None: a, e = (alpha2 if k == 0 else alpha * np.exp(-0.5 * (k - 1))), eps * 0.5 ** (k - 1)
        else: a, e = alpha * np.exp(-0.5 * k), eps * 0.5 ** k
        step = 0
        while True:
            if np.linalg.norm(X - Xp) <= e or (kp_idx is not None and step > 10): break
            Xp = X.copy()
            d, j = nn(cur)
            w = (d < max(2 * d.mean(), floor)).astype(float)
            Dc = D(cur)
            rows_A, rows_B = [a * (A1k if (kp_idx is not None and k == 0) else A1)], [np.zeros((A1.shape[0], 3))]
            if not (kp_idx is not None and k == 0): rows_A.append(w[:, None] * Dc); rows_B.append(w[:, None] * T[j])
            if kp_idx is not None:
                kw = np.zeros((n, 1)); kw[kp_idx] = kp_w if k == 0 else kp_w * np.exp(-0.9 * count) / 10
                tg = T[j].copy(); tg[kp_idx] = kp_tgt
                rows_A.append(kw * Dc); rows_B.append(kw * tg)
            X = np.linalg.lstsq(np.vstack(rows_A), np.vstack(rows_B), rcond=None)[0]
            cur = Dc @ X
            step += 1; count += 1
            if kp_idx is not None and k == 0: break
    return cur

def test_realy_nicp_equals_a_dense_re_typed_reference():
    g = np.random.default_rng(3)
    S, F = grid_patch(7, 12.0, z=lambda v: 0.02 * (v[:, 0] ** 2 + 0.5 * v[:, 1] ** 2))       # curved: keypoints not coplanar
    S = S + torch.from_numpy(g.normal(scale=0.05, size=S.shape))
    T, _ = grid_patch(11, 16.0, z=lambda v: 0.02 * (v[:, 0] ** 2 + 0.5 * v[:, 1] ** 2) + 0.8 * torch.sin(v[:, 0] / 4) + 0.3)
    T = T + torch.from_numpy(g.normal(scale=0.05, size=T.shape))
    cfg = REALYNICPConfig(ridge=0.0)
    kp = np.array([0, 6, 24, 42, 48, 24])                                  # a duplicate index: the last target wins
    kt = S[kp].numpy() + g.normal(scale=0.3, size=(6, 3))
    try: from threadpoolctl import threadpool_limits          # small dense solves: BLAS threads only add overhead
    except ImportError: threadpool_limits = lambda n: contextlib.nullcontext()
    with threadpool_limits(1):
        refs = {k: dense_nicp(S.numpy(), F.numpy(), T.numpy(), *a) for k, a in (('free', (None, None)), ('kp', (kp, kt)))}
    for key, (kp_idx, kp_tgt) in (('free', (None, None)), ('kp', (kp, kt))):
        ours = realy_nicp(S, F, T, kp_idx, kp_tgt, cfg).numpy()
        assert np.abs(ours - S.numpy()).max() > 0.1                       # it did move
        np.testing.assert_allclose(ours, refs[key], atol=1e-6)
    # the default relative ridge of 1e-12 changes nothing measurable
    np.testing.assert_allclose(realy_nicp(S, F, T, kp, kt).numpy(), refs['kp'], atol=1e-6)

def test_multiface_table_rows():
    v, f = sphere_mesh(16, 32, dtype=torch.float64)
    rows = multiface_table([('s1', 0.101 * v, f, 0.1 * v, f), ('s2', 0.1 * v, f, 0.1 * v, f)], regions={'top': torch.nonzero(v[:, 1] > 0)[:, 0]})
    assert [r['subject'] for r in rows] == ['s1', 's2', 'mean', 'median']
    assert abs(rows[2]['cd_mm'] - (rows[0]['cd_mm'] + rows[1]['cd_mm']) / 2) < 1e-12 and 'top/cd_mm' in rows[0]
    with pytest.raises(InputError): multiface_table([])
