"""Tests of the built-in head (facebench.models.builtin): geometry, mesh quality, bases, landmarks, regions, forward."""
import time
import numpy as np
import pytest
import torch
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

import facebench.models.builtin as builtin
from facebench.core import InputError
from facebench.models.base import REGION_NAMES, ModelData, MorphableModel
from facebench.models.builtin import BUILTIN_AUS, BUILTIN_SHAPE_MODES, builtin_head, builtin_head_data

REQUIRED_AUS = ['AU1', 'AU2', 'AU4', 'AU6', 'AU9', 'AU12', 'AU15', 'AU17', 'AU20', 'AU25', 'AU26', 'AU45']


@pytest.fixture(scope='module')
def data():
    return builtin_head_data()


@pytest.fixture(scope='module')
def model(data):
    return MorphableModel(data, dtype=torch.float64)


def expr(model, **aus):
    e = torch.zeros(1, model.n_expression, dtype=model.dtype)
    for k, v in aus.items(): e[0, model.expression_names.index(k)] = v
    return e


def eyeball_ids(data):
    W = data.lbs_weights
    return np.nonzero(W[:, 3] + W[:, 4] > 0.5)[0]


def frontal_depth(V, F, xs, ys):
    "largest z of the mesh at the frontal positions (x, y): an orthographic depth map, by brute force"
    T = V[F]
    out = np.full(len(xs), np.nan)
    for i, (x, y) in enumerate(zip(xs, ys)):
        a, b, c = T[:, 0, :2], T[:, 1, :2], T[:, 2, :2]
        v0, v1, p = b - a, c - a, np.array([x, y]) - a
        den = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
        ok = np.abs(den) > 1e-14
        den = np.where(ok, den, 1)
        l1 = (p[:, 0] * v1[:, 1] - p[:, 1] * v1[:, 0]) / den
        l2 = (v0[:, 0] * p[:, 1] - v0[:, 1] * p[:, 0]) / den
        inside = ok & (l1 >= 0) & (l2 >= 0) & (l1 + l2 <= 1)
        if inside.any():
            z = (1 - l1 - l2) * T[:, 0, 2] + l1 * T[:, 1, 2] + l2 * T[:, 2, 2]
            out[i] = z[inside].max()
    return out


# ---------------------------------------------------------------------------------------------------------------
# building

def test_build_time_and_bitwise_determinism():
    builtin._CACHE.clear()
    t0 = time.perf_counter(); a = builtin_head_data(); dt = time.perf_counter() - t0
    builtin._CACHE.clear()
    b = builtin_head_data()
    print(f'built-in head (5000 vertices) built in {dt:.3f} s')
    assert dt < 2.0                         # typically ~0.3 s; generous for loaded CI machines
    for k in ('v_template', 'faces', 'shapedirs', 'exprdirs', 'landmark_faces', 'landmark_bary', 'J_regressor',
              'lbs_weights', 'posedirs', 'eyelid_dirs', 'uv', 'faces_uv'):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    assert all(np.array_equal(a.regions[k], b.regions[k]) for k in a.regions)


def test_seed_changes_only_the_random_identity_components():
    a, b = builtin_head_data(seed=0), builtin_head_data(seed=1)
    n = len(BUILTIN_SHAPE_MODES)
    assert np.array_equal(a.v_template, b.v_template) and np.array_equal(a.exprdirs, b.exprdirs)
    assert np.array_equal(a.shapedirs[:, :, :n], b.shapedirs[:, :, :n])
    assert not np.allclose(a.shapedirs[:, :, n:], b.shapedirs[:, :, n:])


@pytest.mark.parametrize('n', [500, 2000, 8000, 20000])
def test_vertex_count_close_to_request(n):
    d = builtin_head_data(n_vertices=n, n_shape=4)
    assert abs(d.n_vertices - n) <= 0.2 * n
    assert d.validate() is d


def test_cache_returns_independent_copies():
    a = builtin_head_data(); a.v_template[:] = 0
    assert np.abs(builtin_head_data().v_template).max() > 0.1


def test_npz_round_trip(tmp_path, data):
    back = ModelData.load_npz(data.save_npz(tmp_path / 'builtin.npz'))
    assert np.array_equal(back.v_template, data.v_template) and back.expression_names == data.expression_names
    assert back.expression_kind == 'blendshape' and set(back.regions) == set(data.regions)


def test_bad_arguments_are_named():
    for kw, word in ((dict(n_vertices=10), 'n_vertices'), (dict(n_vertices=5000.5), 'n_vertices'), (dict(seed=-1), 'seed'),
                     (dict(seed='a'), 'seed'), (dict(n_shape=-1), 'n_shape'), (dict(n_shape=True), 'n_shape')):
        with pytest.raises(InputError, match=word): builtin_head_data(**kw)
    with pytest.raises(InputError, match='n_expression'): builtin_head(n_expression=100)


def test_builtin_head_arguments():
    m = builtin_head(n_vertices=1500, n_shape=7, n_expression=5, dtype=torch.float64, device='cpu')
    assert m.dtype == torch.float64 and m.n_shape == 7 and m.expression_names == list(BUILTIN_AUS)[:5]
    assert m.v_template.device.type == 'cpu' and m.units == 'm'
    assert builtin_head_data(n_shape=0).shapedirs.shape[2] == 0


# ---------------------------------------------------------------------------------------------------------------
# geometry

def test_frame_and_scale(data):
    V = data.v_template
    skin = np.setdiff1d(np.arange(len(V)), eyeball_ids(data))
    lm = (V[data.faces[data.landmark_faces]] * data.landmark_bary[:, :, None]).sum(1)
    crown, chin = V[skin, 1].max(), lm[8, 1]
    assert 0.19 < crown - chin < 0.27                     # head ~0.2 m tall (crown to chin)
    assert lm[30, 2] > 0.1 and V[skin, 2].min() < -0.08     # the face looks along +z
    J = data.J_regressor @ V
    assert J[3, 0] > 0.02 and J[4, 0] < -0.02               # eye_left is the subject's left: +x
    assert abs(V[skin, 0].mean()) < 1e-9 and np.linalg.norm(J[1]) < 0.1   # centred, neck joint near the origin


def test_mirror_symmetric(data):
    V = data.v_template
    dist, _ = cKDTree(V).query(V * [-1, 1, 1])
    assert dist.max() < 1e-9


def test_mesh_quality(data):
    V, F = data.v_template, data.faces
    T = V[F]
    area = np.linalg.norm(np.cross(T[:, 1] - T[:, 0], T[:, 2] - T[:, 0]), axis=1) / 2
    assert area.min() > 1e-8
    angles = []
    for k in range(3):
        u, v = T[:, (k + 1) % 3] - T[:, k], T[:, (k + 2) % 3] - T[:, k]
        angles.append(np.degrees(np.arccos(np.clip((u * v).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1), -1, 1))))
    assert np.min(angles) > 5.0
    mesh = trimesh.Trimesh(V, F, process=False)
    assert mesh.is_winding_consistent and mesh.volume > 0.003          # outward, a head's volume (m^3)
    # edge-manifold; the boundary is four loops: the neck cut, two eye openings and the mouth
    e = np.sort(np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]]), 1)
    edges, count = np.unique(e, axis=0, return_counts=True)
    assert count.max() == 2
    b = edges[count == 1]
    g = coo_matrix((np.ones(len(b)), (b[:, 0], b[:, 1])), shape=(len(V), len(V)))
    _, label = connected_components(g, directed=False)
    loops = np.unique(label[np.unique(b)])
    assert len(loops) == 4
    neck = [l for l in loops if V[label == l, 1].max() < -0.17]
    assert len(neck) == 1
    # normals point away from the inside on (nearly) the whole skin
    n = np.cross(T[:, 1] - T[:, 0], T[:, 2] - T[:, 0]); c = T.mean(1)
    inner = np.where(c[:, 1:2] > -0.06, [0, 0, 0], np.c_[np.zeros(len(c)), c[:, 1], np.full(len(c), -0.017)])
    assert ((n * (c - inner)).sum(1) > 0).mean() > 0.97


def test_midsagittal_profile_reads_as_a_face(data):
    V = data.v_template
    mid = np.nonzero((np.abs(V[:, 0]) < 1e-9) & (V[:, 2] > 0.05) & (V[:, 1] > -0.1) & (V[:, 1] < 0.08))[0]
    y, z = V[mid, 1], V[mid, 2]
    def peak(lo, hi, top=True):
        s = (y > lo) & (y < hi)
        assert s.sum() >= 1, (lo, hi)
        return z[s].max() if top else z[s].min()
    brow, nasion, tip = peak(0.033, 0.055), peak(0.02, 0.034, False), peak(-0.02, 0.0)
    upper, mouth, lower = peak(-0.045, -0.032), peak(-0.05, -0.044, False), peak(-0.062, -0.049)
    sulcus, chin = peak(-0.075, -0.06, False), peak(-0.092, -0.072)
    assert brow > nasion + 0.002 and tip > nasion + 0.015
    assert tip == z.max()                                   # the nose tip is the most forward point of the face
    assert upper > mouth + 0.004 < lower and lower > sulcus + 0.003 and chin > sulcus + 0.0015
    assert tip - 0.025 > chin - 0.01                        # a nose, not a snout


def test_eye_sockets_are_recessed(data):
    V, F = data.v_template, data.faces
    for x in (0.031, -0.031):
        brow, eye, cheek = frontal_depth(V, F, np.full(3, x), np.array([0.045, 0.022, -0.012]))
        assert eye < brow - 0.004 and eye < cheek - 0.002


# ---------------------------------------------------------------------------------------------------------------
# landmarks, regions, UVs

def test_landmarks_where_they_belong(model):
    L = model().landmarks[0].numpy()
    assert L[30, 2] == L[:, 2].max()                           # nose tip is the most forward landmark
    assert L[8, 1] == L[:17, 1].min()                          # chin is the lowest contour point
    assert np.all(np.diff(L[:17, 0]) > 0)                      # contour runs from the subject's right to left
    for a, b in ((36, 45), (39, 42), (48, 54), (0, 16), (31, 35), (17, 26)):
        assert np.allclose(L[a] * [-1, 1, 1], L[b], atol=1e-6) and L[a, 0] < 0
    assert np.abs(L[[8, 27, 30, 33, 51, 57, 62, 66], 0]).max() < 1e-6
    assert L[[19, 24], 1].min() > L[[37, 44], 1].max() > L[[41, 46], 1].max() > L[30, 1] > L[51, 1] > L[57, 1] > L[8, 1]
    assert abs(L[39, 0]) < abs(L[36, 0]) and abs(L[48, 0]) > abs(L[62, 0])
    assert 0.055 < L[45, 0] - L[36, 0] < 0.1                   # outer eye corners ~9 cm apart


def test_regions(data):
    V = data.v_template
    assert set(REGION_NAMES) <= set(data.regions)
    for k in REGION_NAMES:
        r = data.regions[k]
        assert len(r) > 20 and r.min() >= 0 and r.max() < len(V), k
    lm = (V[data.faces[data.landmark_faces]] * data.landmark_bary[:, :, None]).sum(1)
    tip = int(np.argmin(np.linalg.norm(V - lm[30], axis=1)))
    assert tip in data.regions['nose'] and tip in data.regions['face']
    assert set(data.faces[data.landmark_faces[62]]) <= set(data.regions['mouth'])
    assert set(eyeball_ids(data)) <= set(data.regions['eyes'])
    assert np.abs(V[data.regions['ears'], 0]).min() > 0.05
    assert V[data.regions['neck'], 1].mean() < V[data.regions['face'], 1].mean() < V[data.regions['scalp'], 1].mean()


def test_uv_layout(data):
    uv, fu = data.uv, data.faces_uv
    assert fu.shape == data.faces.shape and uv.min() >= 0 and uv.max() <= 1
    T = uv[fu]
    assert (T[:, :, 0].max(1) - T[:, :, 0].min(1)).max() < 0.5            # no triangle wraps around the seam
    area = (T[:, 1, 0] - T[:, 0, 0]) * (T[:, 2, 1] - T[:, 0, 1]) - (T[:, 2, 0] - T[:, 0, 0]) * (T[:, 1, 1] - T[:, 0, 1])
    assert (area > 0).all()                                              # consistently oriented, none degenerate


# ---------------------------------------------------------------------------------------------------------------
# joints, bases

def test_joints_and_weights(data):
    V, W, Jr = data.v_template, data.lbs_weights, data.J_regressor
    assert data.joint_names == ['global', 'neck', 'jaw', 'eye_left', 'eye_right'] and list(data.parents) == [-1, 0, 1, 1, 1]
    assert np.allclose(W.sum(1), 1) and W.min() >= 0 and np.allclose(Jr.sum(1), 1)
    J = Jr @ V
    for k, side in ((3, 1), (4, -1)):       # each eye joint is the centre of its eyeball (fitted sphere, least squares)
        P = V[W[:, k] > 0.5]
        A = np.c_[2 * P, np.ones(len(P))]
        c = np.linalg.lstsq(A, (P ** 2).sum(1), rcond=None)[0][:3]
        assert np.linalg.norm(c - J[k]) < 0.002 and np.sign(J[k, 0]) == side
    assert J[0, 1] < J[1, 1] < J[2, 1] < J[3, 1]             # root below neck below jaw hinge below the eyes
    scaled = V + 2 * data.shapedirs[:, :, 0]                   # joints follow the identity
    assert np.linalg.norm(Jr @ scaled - J, axis=1).max() > 0.001


def test_posedirs(data):
    P = data.posedirs.reshape(36, -1, 3)
    assert P.shape[1] == data.n_vertices
    assert np.abs(P[18:]).max() == 0                           # eyes: none
    assert 1e-4 < np.abs(P[9:18]).max() < 0.01 and 1e-4 < np.abs(P[:9]).max() < 0.01


def test_identity_basis_well_conditioned_and_plausible(data):
    S = data.shapedirs
    assert S.shape[2] == 50
    A = S.reshape(-1, S.shape[2]); A = A / np.linalg.norm(A, axis=0)
    s = np.linalg.svd(A, compute_uv=False)
    assert (s > 1e-6 * s[0]).sum() == S.shape[2] and s[0] / s[-1] < 100
    peak = np.abs(S).max((0, 1))
    assert peak.min() > 3e-4 and peak.max() < 0.012            # sub-mm to ~1 cm at one standard deviation
    lm = lambda V: (V[data.faces[data.landmark_faces]] * data.landmark_bary[:, :, None]).sum(1)
    names = [n for n, _ in BUILTIN_SHAPE_MODES]
    V0 = data.v_template
    assert lm(V0 + S[:, :, names.index('nose_projection')])[30, 2] > lm(V0)[30, 2] + 0.002
    assert np.ptp(V0 + S[:, :, names.index('head_width')], axis=0)[0] > np.ptp(V0, axis=0)[0] + 0.003


def test_expressions_are_named_localised_action_units(data):
    assert data.expression_kind == 'blendshape' and data.expression_names == list(BUILTIN_AUS)
    assert set(REQUIRED_AUS) <= set(data.expression_names)
    assert all(isinstance(v, str) and len(v) > 10 for v in BUILTIN_AUS.values())
    V, E = data.v_template, data.exprdirs
    D = {k: np.linalg.norm(E[:, :, i], axis=1) for i, k in enumerate(data.expression_names)}
    eyes = np.minimum(np.linalg.norm(V - [0.031, 0.022, 0.0745], axis=1), np.linalg.norm(V - [-0.031, 0.022, 0.0745], axis=1))
    for k in ('AU12', 'AU15', 'AU20', 'AU25', 'AU18', 'AU26', 'AU27'):
        assert D[k][V[:, 1] > 0.05].max() < 1e-6, k             # mouth units leave the forehead alone
    for k in ('AU1', 'AU2', 'AU4'):
        assert D[k][V[:, 1] < -0.03].max() < 1e-6, k            # brow units leave the mouth alone
    for k in ('AU45', 'AU5', 'AU7'):
        assert D[k][eyes > 0.03].max() == 0, k                  # eyelid units move only the eyelids
    for k in data.expression_names:
        assert 0.001 < D[k].max() < 0.05, k                     # visible at weight 1, never absurd
    assert np.abs(E[eyeball_ids(data)]).max() == 0              # eyeballs never deform


def test_action_units_do_what_they_say(model):
    L0 = model().landmarks[0]
    L = lambda **aus: model(expression=expr(model, **aus)).landmarks[0]
    d = L(AU1=1) - L0
    assert (d[[21, 22], 1] > 0.003).all() and (d[[17, 26], 1].abs() < d[[21, 22], 1]).all()
    d = L(AU2=1) - L0
    assert (d[[17, 26], 1] > 0.003).all()
    assert ((L(AU4=1) - L0)[[21, 22], 1] < -0.002).all()
    d = L(AU12=1) - L0
    assert (d[[48, 54], 1] > 0.004).all() and d[48, 0] < 0 < d[54, 0]
    assert ((L(AU15=1) - L0)[[48, 54], 1] < -0.004).all()
    d = L(AU26=1) - L0
    assert d[8, 1] < -0.01 and d[66, 1] < d[62, 1] - 0.005
    d = L(AU25=1) - L0
    assert d[62, 1] > 0.001 and d[66, 1] < -0.002
    d = L(AU45=1)
    assert (L0[37] - L0[41]).norm() > 0.004 and (d[37] - d[41]).norm() < 0.0015 and (d[44] - d[46]).norm() < 0.0015


# ---------------------------------------------------------------------------------------------------------------
# forward through MorphableModel

def test_forward_float32_float64_batches(data):
    m32, m64 = MorphableModel(data), MorphableModel(data, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    kw = dict(shape=torch.randn(3, 50, generator=g) * 0.8, expression=torch.rand(3, 24, generator=g),
              jaw_pose=torch.tensor([[0.2, 0, 0], [0.1, 0.05, 0], [0, 0, 0]]), eyelids=torch.rand(3, 2, generator=g))
    a = m32(**kw)
    b = m64(**{k: v.double() for k, v in kw.items()})
    assert a.vertices.shape == (3, data.n_vertices, 3) and a.landmarks.shape == (3, 68, 3) and a.joints.shape == (3, 5, 3)
    assert a.vertices.dtype == torch.float32 and b.vertices.dtype == torch.float64
    assert torch.allclose(a.vertices.double(), b.vertices, atol=2e-6)


def test_jaw_pose_opens_the_mouth(model):
    L0, L1 = model().landmarks[0], model(jaw_pose=torch.tensor([[0.3, 0, 0]], dtype=torch.float64)).landmarks[0]
    d = L1 - L0
    assert d[66, 1] < d[62, 1] - 0.01 and d[8, 1] < -0.02 and d[62].norm() < 0.002
    assert (L1[66] - L1[62]).norm() > 0.01                      # the lips separate


def test_eye_pose_rotates_only_the_eyeballs(model, data):
    out = model(eye_pose=torch.tensor([[0.0, 0.3, 0.0, 0.2, 0.0, 0.0]], dtype=torch.float64))
    moved = np.nonzero((out.vertices[0] - model.v_template).norm(dim=1).numpy() > 1e-12)[0]
    eyes = eyeball_ids(data)
    assert set(moved) <= set(eyes) and len(moved) > 0.8 * len(eyes) and set(moved) <= set(data.regions['eyes'])
    J = out.joints[0]
    for k, ids in ((3, eyes[data.v_template[eyes, 0] > 0]), (4, eyes[data.v_template[eyes, 0] < 0])):
        r0 = (model.v_template[ids] - J[k]).norm(dim=1); r1 = (out.vertices[0, ids] - J[k]).norm(dim=1)
        assert torch.allclose(r0, r1, atol=1e-12)              # a rotation about the eye's centre


def test_global_pose_is_a_rigid_rotation_about_the_root(model):
    aa = np.array([0.2, 1.1, -0.3])
    out = model(global_pose=torch.tensor(aa[None], dtype=torch.float64))
    R = Rotation.from_rotvec(aa).as_matrix()
    J0 = (model.J_regressor @ model.v_template)[0].numpy()
    want = (model.v_template.numpy() - J0) @ R.T + J0
    assert np.abs(out.vertices[0].numpy() - want).max() < 1e-10


def test_neck_pose_turns_the_head_not_the_neck_base(model, data):
    aa = np.array([0.0, 0.5, 0.0])
    out = model(neck_pose=torch.tensor(aa[None], dtype=torch.float64)).vertices[0].numpy()
    V, W = data.v_template, data.lbs_weights
    base = W[:, 0] > 1 - 1e-9
    assert base.sum() > 20 and np.abs(out[base] - V[base]).max() < 1e-12
    crown = int(np.argmax(V[:, 1]))
    Jn = (data.J_regressor @ V)[1]
    want = Rotation.from_rotvec(aa).apply(V[crown] - Jn) + Jn
    assert np.abs(out[crown] - want).max() < 1e-6


def test_eyelids_close_one_eye_at_a_time(model, data):
    L0 = model().landmarks[0]
    out = model(eyelids=torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    L1 = out.landmarks[0]
    assert (L1[43] - L1[47]).norm() < 0.0015 and (L1[44] - L1[46]).norm() < 0.0015     # left eye (+x) closed
    assert torch.allclose(L1[36:42], L0[36:42])                                           # right eye untouched
    moved = (out.vertices[0] - model.v_template).norm(dim=1) > 1e-12
    assert (model.v_template[moved, 0] > 0.01).all()
