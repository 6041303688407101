"""The LBS core and the generic MorphableModel, checked against hand-computed rigid motions (scipy rotations)."""
import numpy as np, pytest, torch
from scipy.spatial.transform import Rotation
from facebench.core import InputError
from facebench.models.base import ModelData, MorphableModel, Params, ParamDistribution, sample_params, contour_row
from facebench.models.lbs import lbs, batch_rigid_transform, vertices_to_landmarks

rng = np.random.default_rng(0)

def chain_model(V=60, S=4, E=3, posedirs=True):
    "A random 3-joint chain (root, neck, jaw) with hard skinning so each vertex follows one joint."
    v = rng.normal(size=(V, 3))
    faces = np.stack([rng.permutation(V)[:3] for _ in range(40)])
    joints = np.array([[0., 0, 0], [0, 1, 0], [0, 1.5, 0.5]])
    Jr = np.zeros((3, V + 3)); Jr[[0, 1, 2], [V, V + 1, V + 2]] = 1   # joints are exact copies of 3 anchor vertices
    v = np.concatenate([v, joints])
    W = np.zeros((V + 3, 3)); lab = rng.integers(0, 3, V + 3); lab[V:] = [0, 1, 2]; W[np.arange(V + 3), lab] = 1
    sd = rng.normal(size=(V + 3, 3, S)) * 0.1; sd[V:] = 0       # keep joints fixed under shape so the reference is simple
    ed = rng.normal(size=(V + 3, 3, E)) * 0.1; ed[V:] = 0
    pd = rng.normal(size=(18, 3 * (V + 3))) * 0.01 if posedirs else None
    return ModelData(name='chain', v_template=v, faces=faces, shapedirs=sd, exprdirs=ed, landmark_faces=np.arange(68) % 40,
                     landmark_bary=rng.dirichlet(np.ones(3), 68), joint_names=['global', 'neck', 'jaw'], parents=np.array([-1, 0, 1]),
                     J_regressor=Jr, lbs_weights=W, posedirs=pd, regions={'face': np.arange(V)}), lab

def test_lbs_matches_forward_kinematics_by_hand():
    data, lab = chain_model(posedirs=False)
    m = MorphableModel(data, dtype=torch.float64)
    shape, expr = torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    g, n, j = (Rotation.random(2, random_state=s) for s in (1, 2, 3))
    out = m(shape=shape, expression=expr, global_pose=torch.from_numpy(g.as_rotvec()), neck_pose=torch.from_numpy(n.as_rotvec()),
            jaw_pose=torch.from_numpy(j.as_rotvec()))
    vs = data.v_template + np.einsum('vck,bk->bvc', data.shapedirs, shape.numpy()) + np.einsum('vck,bk->bvc', data.exprdirs, expr.numpy())
    J = data.v_template[-3:]
    for b in range(2):
        # world transform of each joint: G0 = R0 about J0; G1 = G0 * (R1 about J1); G2 = G1 * (R2 about J2)
        def about(R, c): T = np.eye(4); T[:3, :3] = R; T[:3, 3] = c - R @ c; return T
        G0 = about(g[b].as_matrix(), J[0]); G1 = G0 @ about(n[b].as_matrix(), J[1]); G2 = G1 @ about(j[b].as_matrix(), J[2])
        G = np.stack([G0, G1, G2])[lab]
        ref = np.einsum('vrc,vc->vr', G[:, :3, :3], vs[b]) + G[:, :3, 3]
        np.testing.assert_allclose(out.vertices[b].numpy(), ref, atol=1e-12)
        np.testing.assert_allclose(out.joints[b, 0].numpy(), J[0], atol=1e-12)   # the root rotates about itself
        np.testing.assert_allclose(out.joints[b, 1].numpy(), (G0 @ np.r_[J[1], 1])[:3], atol=1e-12)
        np.testing.assert_allclose(out.joints[b, 2].numpy(), (G1 @ np.r_[J[2], 1])[:3], atol=1e-12)

def test_pose_correctives_follow_rotation_features():
    data, _ = chain_model(posedirs=True)
    m = MorphableModel(data, dtype=torch.float64)
    jaw = torch.tensor([[0.3, 0.0, 0.0]], dtype=torch.float64)
    with_pd = m(jaw_pose=jaw).vertices
    data2 = ModelData(**{**data.__dict__, 'posedirs': None})
    without = MorphableModel(data2, dtype=torch.float64)(jaw_pose=jaw).vertices
    R = Rotation.from_rotvec(jaw[0].numpy()).as_matrix()
    feat = np.concatenate([np.zeros(9), (R - np.eye(3)).ravel()])
    corr = (feat @ data.posedirs).reshape(-1, 3)
    # vertices on the root joint are not rotated, so the corrective shows up unchanged there
    root = np.where(data.lbs_weights[:, 0] == 1)[0]
    np.testing.assert_allclose((with_pd - without)[0, root].numpy(), corr[root], atol=1e-12)

def test_float32_float64_agree_and_batches_are_independent():
    data, _ = chain_model()
    m32, m64 = MorphableModel(data), MorphableModel(data, dtype=torch.float64)
    p = sample_params(m64, 5, ParamDistribution(global_std_deg=(20, 20, 20), neck_std_deg=(10, 10, 10)), generator=3)
    v64 = m64.from_params(p).vertices
    v32 = m32.from_params(p.to(dtype=torch.float32)).vertices
    assert v32.dtype == torch.float32
    np.testing.assert_allclose(v32.numpy(), v64.numpy(), atol=1e-5)
    np.testing.assert_allclose(m64.from_params(p[2]).vertices[0].numpy(), v64[2].numpy(), atol=1e-13)

def test_gradients_flow_to_every_parameter():
    data, _ = chain_model()
    m = MorphableModel(data, dtype=torch.float64)
    p = Params.zeros(m, 2).map(lambda t: t.clone().requires_grad_())
    (m.from_params(p).vertices ** 2).sum().backward()
    for k, v in p.items():
        assert v.grad is not None and torch.isfinite(v.grad).all(), k

def test_landmarks_are_barycentric_points():
    data, _ = chain_model()
    m = MorphableModel(data, dtype=torch.float64)
    out = m(shape=torch.randn(1, 4, dtype=torch.float64))
    tri = out.vertices[0][m.faces[m.landmark_faces]]
    np.testing.assert_allclose(out.landmarks[0].numpy(), np.einsum('lk,lkc->lc', data.landmark_bary, tri.numpy()), atol=1e-12)

def test_contour_row_convention():
    # yaw of +10 deg about y (composed root*neck) reads as -10 in FLAME's sign -> row 39 + 10 = 49; -20 deg -> row 20; beyond 39 clamps
    def rot(deg): return torch.from_numpy(Rotation.from_euler('y', deg, degrees=True).as_matrix())[None, None].expand(1, 2, 3, 3).clone()
    names = ['global', 'neck']
    ident = torch.eye(3, dtype=torch.float64)[None, None].expand(1, 2, 3, 3).clone()
    r = rot(10.0); r[:, 1] = ident[:, 1]
    assert contour_row(r, names).item() == 49
    r = rot(-20.0); r[:, 1] = ident[:, 1]
    assert contour_row(r, names).item() == 20
    r = rot(-60.0); r[:, 1] = ident[:, 1]
    assert contour_row(r, names).item() == 39
    r = rot(60.0); r[:, 1] = ident[:, 1]
    assert contour_row(r, names).item() == 78

def test_model_npz_round_trip(tmp_path):
    data, _ = chain_model()
    p = data.save_npz(tmp_path / 'm.npz')
    back = ModelData.load_npz(p)
    a, b = MorphableModel(data, dtype=torch.float64), MorphableModel(back, dtype=torch.float64)
    x = torch.randn(3, 4, dtype=torch.float64)
    assert torch.equal(a(shape=x, jaw_pose=torch.full((3, 3), 0.2, dtype=torch.float64)).vertices,
                       b(shape=x, jaw_pose=torch.full((3, 3), 0.2, dtype=torch.float64)).vertices)
    assert back.joint_names == data.joint_names and set(back.regions) == set(data.regions)

def test_wrong_format_npz_is_named(tmp_path):
    np.savez(tmp_path / 'other.npz', v_template=np.zeros((3, 3)))
    with pytest.raises(InputError, match=r"other.npz is not a facebench model npz.*'v_template'"):
        ModelData.load_npz(tmp_path / 'other.npz')
    (tmp_path / 'trunc.npz').write_bytes(b'PK\x03\x04garbage')
    with pytest.raises(InputError, match='trunc.npz is not a readable .npz'):
        ModelData.load_npz(tmp_path / 'trunc.npz')
    with pytest.raises(FileNotFoundError, match='missing.npz'):
        ModelData.load_npz(tmp_path / 'missing.npz')

def test_bad_model_arrays_are_named():
    data, _ = chain_model()
    with pytest.raises(InputError, match=r'`shapedirs` must have shape \(63, 3, \*\), got \(62, 3, 4\)'):
        ModelData(**{**data.__dict__, 'shapedirs': data.shapedirs[:-1]}).validate()
    bad = data.faces.copy(); bad[0, 0] = 10_000
    with pytest.raises(InputError, match='`faces` indexes outside'):
        ModelData(**{**data.__dict__, 'faces': bad}).validate()
    nan = data.v_template.copy(); nan[3, 1] = np.nan
    with pytest.raises(InputError, match='`v_template`.*non-finite'):
        ModelData(**{**data.__dict__, 'v_template': nan}).validate()

def test_bad_forward_inputs_are_named():
    data, _ = chain_model()
    m = MorphableModel(data)
    with pytest.raises(InputError, match=r'`expression` must have shape \(B, 3\)'):
        m(expression=torch.zeros(1, 5))
    with pytest.raises(InputError, match='`jaw_pose` contains 1 non-finite'):
        m(jaw_pose=torch.tensor([[0., float('nan'), 0.]]))
    with pytest.raises(InputError, match='dtype torch.float64, expected torch.float32'):
        m(shape=torch.zeros(1, 4, dtype=torch.float64))
    with pytest.raises(InputError, match='no eye_left/eye_right joint'):
        m(eye_pose=torch.ones(1, 6))
    with pytest.raises(InputError, match='no eyelid'):
        m(eyelids=torch.ones(1, 2))
    with pytest.raises(InputError, match='n_shape`=9 but model'):
        MorphableModel(data, n_shape=9)

def test_params_batching_indexing_and_files(tmp_path):
    data, _ = chain_model()
    m = MorphableModel(data)
    p = sample_params(m, 6, generator=1)
    assert p.batch_size == 6 and p[2].batch_size == 1 and p[1:4].batch_size == 3 and Params.cat([p, p[:2]]).batch_size == 8
    q = Params.load(p.save(tmp_path / 'p.npz'), dtype=torch.float64)
    assert q.shape.dtype == torch.float64 and torch.allclose(q.shape.float(), p.shape)
    assert torch.equal(sample_params(m, 6, generator=1).shape, p.shape)   # seeded draws are reproducible
    np.savez(tmp_path / 'bad.npz', format=np.array('facebench-params-1'), shoe=np.zeros((2, 3)))
    with pytest.raises(InputError, match=r"bad.npz has unknown Params field\(s\) \['shoe'\]"):
        Params.load(tmp_path / 'bad.npz')
    with pytest.raises(InputError, match='Params.jaw_pose'):
        Params(shape=torch.zeros(2, 4), jaw_pose=torch.zeros(3, 3))

def test_sampler_matches_the_n2fnet_distribution():
    data, _ = chain_model(S=4, E=3)
    m = MorphableModel(data, dtype=torch.float64)
    p = sample_params(m, 20000, generator=0)
    assert abs(p.shape.std().item() - 0.8) < 0.02 and abs(p.expression.std().item() - 0.5) < 0.02
    jaw_deg = torch.rad2deg(p.jaw_pose).std(0)
    np.testing.assert_allclose(jaw_deg.numpy(), [15, 5, 5], rtol=0.03)

@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')
def test_cuda_matches_cpu():
    data, _ = chain_model()
    m = MorphableModel(data, dtype=torch.float64)
    p = sample_params(m, 4, generator=2)
    ref = m.from_params(p).vertices
    got = m.to('cuda').from_params(p.to('cuda')).vertices.cpu()
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-10)
