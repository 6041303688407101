"""NoW / REALY / Multiface protocol pieces against hand-computed values and re-typed reference formulas."""
import numpy as np
import pytest
import torch
from facebench.core import InputError
from facebench.render.raster import sphere_mesh
from facebench.rotations import axis_angle_to_matrix
from facebench.metrics.geometry import umeyama
from facebench.metrics.protocols import (NOW_LANDMARKS_68, now_crop, now_evaluate, now_statistics, scan_to_mesh_icp, realy_fit_rt,
                                         realy_region_icp, realy_region_errors, REALY_KEYPOINTS, multiface_table)

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

def test_realy_region_pipeline_on_synthetic_gt():
    scan, f = ellipsoid(20, 40)
    g = torch.Generator().manual_seed(0)
    kp_idx = torch.randperm(scan.shape[0], generator=g)[:85]
    R = axis_angle_to_matrix(torch.tensor([0.05, -0.05, 0.1], dtype=torch.float64))
    pred = 0.9 * scan @ R.T + 3.0
    regions = {'nose': scan[scan[:, 2] > 50], 'cheek': scan[scan[:, 0] > 40]}
    e = realy_region_errors(pred, f, pred[kp_idx], regions, scan[kp_idx])
    assert e['nose'] < 1e-6 and e['cheek'] < 1e-6 and abs(e['all'] - (e['nose'] + e['cheek']) / 2) < 1e-12
    with pytest.raises(InputError, match='85'): realy_region_errors(pred, f, pred[:80], regions, scan[:80])
    with pytest.raises(InputError, match='region'): realy_region_errors(pred, f, pred[kp_idx], {'ear': scan[:10]}, scan[kp_idx])

def test_multiface_table_rows():
    v, f = sphere_mesh(16, 32, dtype=torch.float64)
    rows = multiface_table([('s1', 0.101 * v, f, 0.1 * v, f), ('s2', 0.1 * v, f, 0.1 * v, f)], regions={'top': torch.nonzero(v[:, 1] > 0)[:, 0]})
    assert [r['subject'] for r in rows] == ['s1', 's2', 'mean', 'median']
    assert abs(rows[2]['cd_mm'] - (rows[0]['cd_mm'] + rows[1]['cd_mm']) / 2) < 1e-12 and 'top/cd_mm' in rows[0]
    with pytest.raises(InputError): multiface_table([])
