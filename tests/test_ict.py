"""ICT-FaceKit: loader, regions, converter from the kit's OBJ folder, FACS table.

References: the compact npz and the raw sample OBJs beside the project (../shared/assets/ict-facekit, tests skip
when absent), the kit's README table (transcribed independently below), scipy rotations and plain-numpy OBJ reading."""
import os, shutil
from pathlib import Path
import numpy as np, pytest, torch
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation
from facebench.core import InputError
from facebench.models.base import REGION_NAMES
from facebench.models.lbs import vertices_to_landmarks
from facebench.models.ict import (AU_TO_ICT, AU_TO_ICT_EXTENDED, AU_TABLE, ICT_EXPRESSION_NAMES, ICT_KEYS, au_to_ict_weights,
                                  check_ict_arrays, convert_ict, ict_to_aus, load_ict, read_ict_data, vertex_embedding,
                                  _read_obj, _fan)

ASSETS = Path(__file__).resolve().parent.parent.parent / 'shared' / 'assets' / 'ict-facekit'
NPZ, SAMPLES = ASSETS / 'ict_facekit_light.npz', ASSETS / 'sample_objs'
needs_npz = pytest.mark.skipif(not NPZ.exists(), reason=f'{NPZ} absent')
needs_objs = pytest.mark.skipif(not (NPZ.exists() and SAMPLES.is_dir()), reason=f'{SAMPLES} absent')

@pytest.fixture(scope='module')
def kit():
    if not NPZ.exists(): pytest.skip(f'{NPZ} absent')
    with np.load(NPZ) as z: return {k: z[k] for k in z.files}

@pytest.fixture(scope='module')
def model():
    if not NPZ.exists(): pytest.skip(f'{NPZ} absent')
    return load_ict(NPZ, dtype=torch.float64)

# --------------------------------------------------------------------------------------------------- FACS table
# rows of the kit's README ("Our expression shapes closest relation to FACS units"), typed in again for the test
README_ROWS = {'AU1': 'browInnerUp_L + browInnerUp_R', 'AU2': 'browOuterUp_L + browOuterUp_R', 'AU4': 'browDown_L + browDown_R',
               'AU6': 'cheekSquint_L + cheekSquint_R', 'AU5': 'eyeWide_L + eyeWide_R', 'AU7': 'eyeSquint_L + eyeSquint_R',
               'AU9': 'noseSneer_L + noseSneer_R', 'AU10': 'mouthShrugUpper', 'AU11': 'mouthUpperUp_L + mouthUpperUp_R',
               'AU12': 'mouthSmile_L + mouthSmile_R', 'AU14': 'mouthDimple_L + mouthDimple_R', 'AU15': 'mouthFrown_L + mouthFrown_R',
               'AU16': 'mouthLowerDown_L + mouthLowerDown_R', 'AU17': 'mouthShrugLower', 'AU18': 'mouthPucker',
               'AU20': 'mouthStretch_L + mouthStretch_R', 'AU22': 'mouthFunnel', 'AU24': 'mouthPress_L + mouthPress_R',
               'AU27': 'jawOpen', 'AU28': 'mouthRollLower + mouthRollUpper', 'AU29': 'jawForward', 'AU30_L': 'jawLeft',
               'AU30_R': 'jawRight', 'AU33': 'cheekPuff_L + cheekPuff_R', 'AU45': 'eyeBlink_L + eyeBlink_R',
               'AU61': 'eyeLookOut_L + eyeLookIn_R', 'AU62': 'eyeLookOut_R + eyeLookIn_L', 'AU63': 'eyeLookUp_L + eyeLookUp_R',
               'AU64': 'eyeLookDown_L + eyeLookDown_R'}

def test_au_table_is_the_kits_table():
    assert {k: ' + '.join(v) for k, v in AU_TO_ICT.items()} == README_ROWS
    assert set(AU_TABLE) == set(AU_TO_ICT)
    assert set(AU_TO_ICT_EXTENDED) - set(AU_TO_ICT) == {'AU26', 'AU43'}

def test_au_targets_are_expression_names():
    for table in (AU_TO_ICT, AU_TO_ICT_EXTENDED):
        for au, shapes in table.items():
            assert shapes and all(s in ICT_EXPRESSION_NAMES for s in shapes), au
    assert len(ICT_EXPRESSION_NAMES) == 53 == len(set(ICT_EXPRESSION_NAMES))

@needs_npz
def test_expression_names_match_the_npz(kit):
    assert list(kit['expression_names']) == list(ICT_EXPRESSION_NAMES)
    names = set(kit['expression_names'])
    assert all(s in names for shapes in AU_TO_ICT_EXTENDED.values() for s in shapes)

def _reference_weights(a, names, table, combine):
    "Plain loop: each AU sets its shapes; max or capped sum across AUs."
    out = np.zeros((a.shape[0], len(ICT_EXPRESSION_NAMES)))
    for b in range(a.shape[0]):
        for j, n in enumerate(names):
            for s in table.get(n, ()):
                e = ICT_EXPRESSION_NAMES.index(s)
                out[b, e] = max(out[b, e], a[b, j]) if combine == 'max' else out[b, e] + a[b, j]
    return out if combine == 'max' else np.minimum(out, 1)

@pytest.mark.parametrize('combine', ['max', 'sum'])
def test_au_to_ict_weights_against_a_loop(combine):
    g = torch.Generator().manual_seed(0)
    names = list(AU_TO_ICT_EXTENDED)
    a = torch.rand(5, len(names), generator=g, dtype=torch.float64)
    a[0] = 0; a[1] = 1; a[2, ::2] = 0
    w = au_to_ict_weights(a, names, table=AU_TO_ICT_EXTENDED, combine=combine)
    assert w.shape == (5, 53) and w.dtype == torch.float64
    np.testing.assert_allclose(w.numpy(), _reference_weights(a.numpy(), names, AU_TO_ICT_EXTENDED, combine), atol=1e-15)
    assert float(w.min()) >= 0 and float(w.max()) <= 1
    # shapes that no AU serves stay at zero, even at full activation
    served = {s for v in AU_TO_ICT_EXTENDED.values() for s in v}
    idle = [i for i, n in enumerate(ICT_EXPRESSION_NAMES) if n not in served]
    assert idle and float(w[1, idle].abs().max()) == 0

def test_au_to_ict_weights_values_by_hand():
    w = au_to_ict_weights(torch.tensor([[0.25, 0.5, 0.75]]), ['AU1', 'au012', '61'])
    got = {n: float(x) for n, x in zip(ICT_EXPRESSION_NAMES, w[0]) if x != 0}
    assert got == {'browInnerUp_L': 0.25, 'browInnerUp_R': 0.25, 'mouthSmile_L': 0.5, 'mouthSmile_R': 0.5,
                   'eyeLookOut_L': 0.75, 'eyeLookIn_R': 0.75}
    # AU26 and AU27 both drive jawOpen in the extended table: max 0.6, capped sum 1.0
    a = torch.tensor([[0.6, 0.5]])
    j = ICT_EXPRESSION_NAMES.index('jawOpen')
    assert float(au_to_ict_weights(a, ['AU26', 'AU27'], table=AU_TO_ICT_EXTENDED)[0, j]) == pytest.approx(0.6)
    assert float(au_to_ict_weights(a, ['AU26', 'AU27'], table=AU_TO_ICT_EXTENDED, combine='sum')[0, j]) == 1.0
    # dicts of floats or (B,) tensors
    d = au_to_ict_weights({'AU45': torch.tensor([0.0, 1.0]), 'AU30L': 0.5})
    assert d.shape == (2, 53)
    assert d[:, ICT_EXPRESSION_NAMES.index('eyeBlink_R')].tolist() == [0.0, 1.0]
    assert d[:, ICT_EXPRESSION_NAMES.index('jawLeft')].tolist() == [0.5, 0.5]

def test_au_to_ict_weights_follows_the_given_expression_names_and_is_differentiable():
    names = list(reversed(ICT_EXPRESSION_NAMES))
    a = torch.tensor([[0.3, 0.9]], requires_grad=True)
    w = au_to_ict_weights(a, ['AU12', 'AU17'], expression_names=names)
    assert float(w[0, names.index('mouthSmile_L')].detach()) == pytest.approx(0.3)
    assert float(w[0, names.index('mouthShrugLower')].detach()) == pytest.approx(0.9)
    w.sum().backward()
    assert a.grad.tolist() == [[2.0, 1.0]]   # AU12 drives two shapes, AU17 one

@pytest.mark.parametrize('au,names,kw,msg', [
    (torch.tensor([[1.5]]), ['AU12'], {}, '[0, 1]'),
    (torch.tensor([[-0.1]]), ['AU12'], {}, '[0, 1]'),
    (torch.tensor([[float('nan')]]), ['AU12'], {}, 'non-finite'),
    (torch.tensor([[0.5]]), ['AU25'], {}, 'not in the table'),
    (torch.tensor([[0.5, 0.5]]), ['AU12', 'AU012'], {}, 'more than once'),
    (torch.tensor([[0.5]]), None, {}, 'au_names'),
    (torch.tensor([[0.5, 0.5]]), ['AU12'], {}, '`au` must have shape'),
    (torch.tensor([[0.5]]), ['AU12'], {'expression_names': ['jawOpen']}, 'mouthSmile_L'),
    (torch.tensor([[0.5]]), ['AU12'], {'combine': 'mean'}, 'combine'),
    (torch.tensor([[0.5]]), ['smile'], {}, "'smile'"),
    (torch.tensor([[1]]), ['AU12'], {}, 'floating'),
])
def test_au_to_ict_weights_errors(au, names, kw, msg):
    with pytest.raises(InputError, match=None) as e: au_to_ict_weights(au, names, **kw)
    assert msg in str(e.value)

def test_unknown_aus_can_be_ignored():
    w = au_to_ict_weights(torch.tensor([[0.5, 0.4]]), ['AU25', 'AU27'], unknown='ignore')
    assert float(w.sum()) == pytest.approx(0.4)

def test_ict_to_aus_inverts_the_table():
    for table in (AU_TO_ICT, AU_TO_ICT_EXTENDED):
        for au, shapes in table.items():
            for s in shapes: assert au in ict_to_aus(s, table)
    assert ict_to_aus('jawOpen') == ['AU27'] and sorted(ict_to_aus('jawOpen', AU_TO_ICT_EXTENDED)) == ['AU26', 'AU27']
    assert ict_to_aus('mouthClose') == []
    with pytest.raises(InputError, match='not an ICT expression'): ict_to_aus('smile')

# --------------------------------------------------------------------------------------------------- OBJ reading
def test_read_obj_fans_polygons_and_resolves_negative_indices(tmp_path):
    p = tmp_path / 'm.obj'
    p.write_text('# comment\nmtllib x.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0 0.5 0.5 0.5\nv 0 1 0\nv 2 0 0\nv 2 1 0\nv 3 1 0\n'
                 'vt 0 0\nvt 1 0\nvt 1 1 0\nvt 0 1\nvn 0 0 1\nusemtl a\n'
                 'f 1/1/1 2/2/1 3/3/1 4/4/1\nf -6/2 -3/1 -2/4 -5/3\nf 5/1 7/2 6/3\nf 1/1 2/2 7/3 6/4 4/1\n')
    o = _read_obj(p)
    assert o.v.shape == (7, 3) and o.vt.shape == (4, 2) and o.v[2].tolist() == [1, 1, 0]
    f, ft = _fan(o.polys, p)
    assert f.tolist() == [[0, 1, 2], [0, 2, 3], [1, 4, 5], [1, 5, 2], [4, 6, 5], [0, 1, 6], [0, 6, 5], [0, 5, 3]]
    assert ft.tolist() == [[0, 1, 2], [0, 2, 3], [1, 0, 3], [1, 3, 2], [0, 1, 2], [0, 1, 2], [0, 2, 3], [0, 3, 0]]
    assert _read_obj(p, faces=False).polys == []

@pytest.mark.parametrize('body,line,msg', [
    ('v 0 0 0\nv 1 0 x\n', 2, 'not a number'),
    ('v 0 0 0\nv 1 0\n', 2, '3 coordinates'),
    ('v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 0\n', 4, 'start at 1'),
    ('v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n', 4, 'out of range'),
    ('v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2\n', 4, 'at least 3'),
    ('v 0 0 0\nv 1 0 0\nv 0 1 0\nf a 2 3\n', 4, 'integers'),
    ('v 0 0 0\nvt 0 0\nvt 1\n', 3, '2 values'),
])
def test_read_obj_errors_name_file_and_line(tmp_path, body, line, msg):
    p = tmp_path / 'bad.obj'; p.write_text(body)
    with pytest.raises(InputError) as e: _read_obj(p)
    assert f'bad.obj, line {line}:' in str(e.value) and msg in str(e.value)

def test_fan_needs_texture_coordinates(tmp_path):
    p = tmp_path / 'nouv.obj'; p.write_text('v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n')
    with pytest.raises(InputError, match='line 4: polygon without texture'): _fan(_read_obj(p).polys, p)

# --------------------------------------------------------------------------------------------------- embedding
def test_vertex_embedding_gives_the_vertex_exactly():
    rng = np.random.default_rng(1)
    faces = np.stack([rng.permutation(30)[:3] for _ in range(50)])
    ids = np.unique(faces)[::3]
    f, b = vertex_embedding(faces, ids)
    v = torch.randn(2, 30, 3, dtype=torch.float64)
    lm = vertices_to_landmarks(v, torch.from_numpy(faces), torch.from_numpy(f), torch.from_numpy(b))
    assert torch.equal(lm, v[:, ids])
    assert all(ids[i] in faces[f[i]] and f[i] == np.flatnonzero((faces == ids[i]).any(1))[0] for i in range(len(ids)))
    lonely = np.setdiff1d(np.arange(31), faces)[0]
    with pytest.raises(InputError, match=str(lonely)): vertex_embedding(faces, [ids[0], lonely])

# --------------------------------------------------------------------------------------------------- file checks
def tiny_arrays(V=12, F=6, T=7, S=2, E=3):
    rng = np.random.default_rng(2)
    return dict(v_template=rng.normal(size=(V, 3)).astype(np.float32), faces=rng.integers(0, V, (F, 3)).astype(np.int32),
                uv=rng.random((T, 2)).astype(np.float32), faces_uv=rng.integers(0, T, (F, 3)).astype(np.int32),
                identity_modes=rng.normal(size=(S, V, 3)).astype(np.float16), expression_modes=rng.normal(size=(E, V, 3)).astype(np.float16),
                expression_names=np.array(ICT_EXPRESSION_NAMES[:E]), identity_names=np.array([f'identity{i:03d}' for i in range(S)]),
                landmarks68=rng.integers(0, V, 68).astype(np.int32), vertex_region=rng.integers(0, 3, V).astype(np.int8),
                region_names=np.array(['narrow_face', 'outer_face', 'head_neck']))

def test_check_accepts_consistent_arrays():
    dims = check_ict_arrays(tiny_arrays())
    assert dims == {'V': 12, 'F': 6, 'T': 7, 'S': 2, 'E': 3, 'R': 3}
    assert set(ICT_KEYS) == set(tiny_arrays())

@pytest.mark.parametrize('change,key,msg', [
    (lambda a: a.pop('landmarks68'), 'landmarks68', "missing key(s) ['landmarks68']"),
    (lambda a: a.update(identity_modes=np.zeros((2, 5, 3), np.float16)), 'identity_modes', 'must have shape (S=2, V=12, 3), found (2, 5, 3)'),
    (lambda a: a.update(expression_names=np.array(['jawOpen'])), 'expression_names', 'must have shape (E=3,), found (1,)'),
    (lambda a: a.update(faces=np.zeros((6, 4), np.int32)), 'faces', 'must have shape (F=6, 3), found (6, 4)'),
    (lambda a: a.update(landmarks68=np.zeros(51, np.int32)), 'landmarks68', 'must have shape (68,), found (51,)'),
    (lambda a: a.update(v_template=np.zeros((12, 3, 1))), 'v_template', 'must have shape (V, 3), found (12, 3, 1)'),
    (lambda a: a['v_template'].__setitem__((3, 1), np.nan), 'v_template', '1 non-finite'),
    (lambda a: a['expression_modes'].__setitem__((0, 3, 1), np.inf), 'expression_modes', 'non-finite'),
    (lambda a: a.update(faces=a['faces'].astype(np.float32)), 'faces', 'integer values'),
    (lambda a: a['faces'].__setitem__((0, 0), 12), 'faces', 'indices in [0, V=12)'),
    (lambda a: a['faces_uv'].__setitem__((0, 0), -1), 'faces_uv', 'indices in [0, T=7)'),
    (lambda a: a['vertex_region'].__setitem__(0, 3), 'vertex_region', 'indices in [0, R=3)'),
])
def test_wrong_files_are_named(tmp_path, change, key, msg):
    a = tiny_arrays(); change(a)
    p = tmp_path / 'wrong.npz'; np.savez(p, **a)
    with pytest.raises(InputError) as e: read_ict_data(p)
    s = str(e.value)
    assert str(p) in s and key in s and msg in s and 'github.com/ICT-VGL/ICT-FaceKit' in s and 'MIT' in s

def test_flame_files_and_non_npz_are_refused(tmp_path):
    p = tmp_path / 'flame.npz'
    np.savez(p, v_template=np.zeros((5023, 3)), f=np.zeros((9976, 3), int), shapedirs=np.zeros((5023, 3, 400)),
             posedirs=np.zeros((36, 15069)))
    with pytest.raises(InputError, match='FLAME') as e: read_ict_data(p)
    assert 'identity_modes' in str(e.value) and 'ICT-VGL/ICT-FaceKit' in str(e.value)
    q = tmp_path / 'model.pkl'; q.write_bytes(b'\x80\x04not a zip')
    with pytest.raises(InputError, match='not a readable .npz'): load_ict(q)
    with pytest.raises(FileNotFoundError, match='ICT-VGL/ICT-FaceKit'): load_ict(tmp_path / 'absent.npz')

# --------------------------------------------------------------------------------------------------- the model
@needs_npz
def test_zero_parameters_give_the_template_and_landmark_vertices(model, kit):
    out = model.neutral()
    assert torch.equal(out.vertices[0], torch.from_numpy(kit['v_template']).double())
    assert torch.equal(out.landmarks[0], out.vertices[0, torch.from_numpy(kit['landmarks68']).long()])
    assert model.units == 'cm' and model.expression_kind == 'blendshape' and model.joint_names == ['global']
    assert (model.n_shape, model.n_expression) == (100, 53) and model.expression_names == list(kit['expression_names'])
    assert torch.equal(model.faces, torch.from_numpy(kit['faces']).long())
    assert torch.equal(model.faces_uv, torch.from_numpy(kit['faces_uv']).long())

@needs_npz
def test_identity_and_expression_modes(model, kit):
    v0 = kit['v_template'].astype(np.float64)
    for i in (0, 7, 99):
        s = torch.zeros(1, 100, dtype=torch.float64); s[0, i] = 1
        np.testing.assert_allclose(model(shape=s).vertices[0].numpy(), v0 + kit['identity_modes'][i].astype(np.float64), atol=1e-6)
    names = list(kit['expression_names'])
    e = torch.zeros(2, 53, dtype=torch.float64); e[0, names.index('jawOpen')] = 1; e[1, names.index('mouthSmile_L')] = 0.5
    out = model(expression=e).vertices.numpy()
    np.testing.assert_allclose(out[0], v0 + kit['expression_modes'][names.index('jawOpen')], atol=1e-6)
    np.testing.assert_allclose(out[1], v0 + 0.5 * kit['expression_modes'][names.index('mouthSmile_L')].astype(np.float64), atol=1e-6)
    chin, top = kit['landmarks68'][8], int(np.argmax(v0[:, 1]))
    assert out[0, chin, 1] < v0[chin, 1] - 1.0                 # the chin drops by more than a centimetre
    assert abs(out[0, top] - v0[top]).max() < 0.05             # the top of the head stays
    # the left smile moves the subject's left mouth corner (landmark 54, +x) more than the right one (48)
    moved = np.linalg.norm(out[1] - v0, axis=1)
    assert moved[kit['landmarks68'][54]] > 3 * moved[kit['landmarks68'][48]] + 0.1

@needs_npz
def test_landmarks_are_the_vertices_under_any_parameters(model, kit):
    g = torch.Generator().manual_seed(3)
    B = 3
    out = model(shape=torch.randn(B, 100, generator=g, dtype=torch.float64), expression=torch.rand(B, 53, generator=g, dtype=torch.float64),
                global_pose=0.3 * torch.randn(B, 3, generator=g, dtype=torch.float64))
    assert torch.equal(out.landmarks, out.vertices[:, torch.from_numpy(kit['landmarks68']).long()])

@needs_npz
def test_global_pose_rotates_about_the_centroid(model):
    rot = Rotation.from_rotvec([[0.3, -0.5, 0.2], [0.0, 1.2, 0.0]])
    g = torch.Generator().manual_seed(4)
    shape = torch.randn(2, 100, generator=g, dtype=torch.float64)
    rest = model(shape=shape).vertices.numpy()
    posed = model(shape=shape, global_pose=torch.from_numpy(rot.as_rotvec())).vertices.numpy()
    for b in range(2):
        c = rest[b].mean(0)
        np.testing.assert_allclose(posed[b], rot[b].apply(rest[b] - c) + c, atol=1e-9)

@needs_npz
def test_float32_batch_truncation_and_errors(model):
    m32 = load_ict(NPZ, n_shape=10, n_expression=20)
    assert m32.dtype == torch.float32 and m32.shapedirs.shape == (11248, 3, 10) and m32.exprdirs.shape == (11248, 3, 20)
    assert m32.expression_names == list(ICT_EXPRESSION_NAMES[:20])
    g = torch.Generator().manual_seed(5)
    s, e = torch.randn(4, 10, generator=g), torch.rand(4, 20, generator=g)
    batch = m32(shape=s, expression=e).vertices
    for b in (0, 3):
        assert torch.allclose(batch[b], m32(shape=s[b:b + 1], expression=e[b:b + 1]).vertices[0], atol=1e-5)
    s64 = torch.cat([s.double(), torch.zeros(4, 90, dtype=torch.float64)], 1)
    e64 = torch.cat([e.double(), torch.zeros(4, 33, dtype=torch.float64)], 1)
    ref = model(shape=s64, expression=e64).vertices
    assert ref.dtype == torch.float64 and (batch.double() - ref).abs().max() < 1e-4
    with pytest.raises(InputError, match='has 100 components'): load_ict(NPZ, n_shape=101)
    with pytest.raises(InputError, match='jawOpen'): m32(jaw_pose=torch.ones(1, 3))

# --------------------------------------------------------------------------------------------------- regions
@needs_npz
def test_regions_are_sensible(model, kit):
    v = kit['v_template'].astype(np.float64); lmk = kit['landmarks68']; V = len(v)
    R = {k: r.numpy() for k, r in model.regions.items()}
    for k in REGION_NAMES + ('narrow_face', 'outer_face', 'head_neck'):
        assert len(R[k]) > 50 and R[k].min() >= 0 and R[k].max() < V and len(np.unique(R[k])) == len(R[k]), k
    # face, ears, neck and scalp partition the mesh; eyes, nose and mouth lie in the face
    parts = np.concatenate([R[k] for k in ('face', 'ears', 'neck', 'scalp')])
    assert len(parts) == V and len(np.unique(parts)) == V
    for k in ('eyes', 'nose', 'mouth'): assert np.isin(R[k], R['face']).all(), k
    # the kit's own areas are its index ranges
    assert R['narrow_face'].tolist() == list(range(6706)) and R['outer_face'].tolist() == list(range(6706, 9409))
    assert R['head_neck'].tolist() == list(range(9409, 11248))
    # landmarks fall in their regions
    assert np.isin(lmk[36:48], R['eyes']).all() and np.isin(lmk[27:36], R['nose']).all() and np.isin(lmk[48:68], R['mouth']).all()
    assert np.isin(lmk[:17], R['face']).all() and np.isin(lmk[17:27], R['face']).all()
    assert int(np.argmax(v[:, 1])) in R['scalp'] and int(np.argmin(v[:, 1])) in R['neck']
    band = (v[:, 1] > -2) & (v[:, 1] < 4)
    for side in (-1, 1):
        assert int(np.flatnonzero(band)[np.argmax(side * v[band, 0])]) in R['ears']      # the most lateral point at ear height
    # the regions do not swallow their neighbours' landmarks
    assert not np.isin(lmk[17:36], R['eyes']).any() and not np.isin(lmk[np.r_[36:48, 48:68]], R['nose']).any()
    assert not np.isin(lmk[np.r_[0:17, 31:36]], R['mouth']).any() and not np.isin(lmk, R['ears']).any()
    # every vertex that sticks out sideways at ear height, behind the jaw-line ends, is ear
    x0, z0 = np.abs(v[lmk[[0, 16]], 0]).mean(), v[lmk[[0, 16]], 2].mean()
    out = (np.abs(v[:, 0]) > x0 + 0.6) & (v[:, 1] > v[lmk[[5, 11]], 1].mean()) & (v[:, 1] < v[lmk[17:27], 1].max()) & (v[:, 2] < z0)
    assert out.sum() > 100 and np.isin(np.flatnonzero(out), R['ears']).all()
    # the small regions stay small and the face is the largest
    assert max(len(R[k]) for k in ('eyes', 'nose', 'mouth')) < 0.15 * V and len(R['face']) > 0.4 * V
    # left-right symmetry: mirrored vertices of a region find a region vertex nearby
    for k in REGION_NAMES:
        p = v[R[k]]; tree = cKDTree(p)
        d, _ = tree.query(p * [-1, 1, 1])
        assert np.mean(d < 0.3) > 0.97, k

# --------------------------------------------------------------------------------------------------- converter
def _obj_vertices(path):
    "Independent reading: numpy's loadtxt on the 'v ' lines."
    lines = [l for l in Path(path).read_text().splitlines() if l.startswith('v ')]
    return np.loadtxt(lines, usecols=(1, 2, 3))

def _kit_copy(tmp_path, names):
    "A FaceXModel-like folder of links to the sample files."
    d = tmp_path / 'FaceXModel'; d.mkdir()
    for n in names: os.symlink(SAMPLES / n, d / n)
    return d

SAMPLE_FILES = ['generic_neutral_mesh.obj', 'identity000.obj', 'identity001.obj', 'jawOpen.obj', 'mouthSmile_L.obj', 'vertex_indices.json']

@needs_objs
def test_convert_sample_folder_matches_the_npz(tmp_path, kit):
    d = _kit_copy(tmp_path, SAMPLE_FILES)
    os.symlink(SAMPLES / 'jawOpen.obj', d / 'cheekRaiser_L.obj')        # extra kit OBJ outside the 53 expressions
    conv = convert_ict(d, tmp_path / 'out' / 'ict.npz', allow_partial=True)
    assert conv.identity_names == ['identity000', 'identity001'] and conv.expression_names == ['jawOpen', 'mouthSmile_L']
    assert not conv.complete and len(conv.missing) == 100 + 53 - 4 and 'identity099.obj' in conv.missing and 'browDown_L.obj' in conv.missing
    assert conv.ignored == ['cheekRaiser_L.obj']
    with np.load(conv.path) as z: a = {k: z[k] for k in z.files}
    assert set(a) == set(kit)
    for k in ('v_template', 'faces', 'uv', 'faces_uv', 'landmarks68', 'vertex_region', 'region_names'):
        assert a[k].dtype == kit[k].dtype and np.array_equal(a[k], kit[k]), k
    assert list(a['identity_names']) == conv.identity_names and list(a['expression_names']) == conv.expression_names
    enames = list(kit['expression_names'])
    idx = [enames.index(n) for n in conv.expression_names]
    assert np.array_equal(a['identity_modes'], kit['identity_modes'][:2])
    assert np.array_equal(a['expression_modes'], kit['expression_modes'][idx])
    # and within float16 precision of the OBJ deltas read independently
    base = _obj_vertices(SAMPLES / 'generic_neutral_mesh.obj')[:11248]
    np.testing.assert_array_equal(a['v_template'], base.astype(np.float32))
    for mode, name in zip(list(a['identity_modes']) + list(a['expression_modes']), conv.identity_names + conv.expression_names):
        delta = _obj_vertices(SAMPLES / f'{name}.obj')[:11248] - base
        assert np.all(np.abs(mode.astype(np.float64) - delta) <= 2.0 ** -11 * np.abs(delta) + 2.0 ** -24), name
    # the partial file loads as a model with its two identity and two expression modes
    m = load_ict(conv.path, dtype=torch.float64)
    assert (m.n_shape, m.n_expression) == (2, 2) and m.expression_names == ['jawOpen', 'mouthSmile_L']
    e = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    np.testing.assert_allclose(m(expression=e).vertices[0].numpy(), kit['v_template'] + kit['expression_modes'][enames.index('jawOpen')], atol=1e-6)

@needs_objs
def test_convert_refuses_incomplete_folder_listing_missing_files(tmp_path):
    d = _kit_copy(tmp_path, SAMPLE_FILES)
    with pytest.raises(InputError) as e: convert_ict(d, tmp_path / 'x.npz')
    s = str(e.value)
    assert '149 of the kit' in s and 'identity002.obj' in s and 'allow_partial=True' in s
    assert not (tmp_path / 'x.npz').exists()
    b = tmp_path / 'b'; b.mkdir()
    d2 = _kit_copy(b, SAMPLE_FILES[:-1])
    with pytest.raises(InputError, match='lacks vertex_indices.json'): convert_ict(d2, tmp_path / 'y.npz', allow_partial=True)
    with pytest.raises(FileNotFoundError, match='ICT-VGL'): convert_ict(tmp_path / 'nowhere', tmp_path / 'z.npz')

@needs_objs
def test_convert_names_bad_obj_file_and_line(tmp_path):
    d = _kit_copy(tmp_path, [n for n in SAMPLE_FILES if n != 'identity001.obj'])
    lines = (SAMPLES / 'identity001.obj').read_text().splitlines()
    k = next(i for i, l in enumerate(lines) if l.startswith('v ')) + 5
    lines[k] = 'v 0.1 nan? 0.3'
    (d / 'identity001.obj').write_text('\n'.join(lines) + '\n')
    with pytest.raises(InputError) as e: convert_ict(d, tmp_path / 'x.npz', allow_partial=True)
    assert f'identity001.obj, line {k + 1}:' in str(e.value) and 'not a number' in str(e.value)
    # a mesh with another vertex count
    (d / 'identity001.obj').write_text('v 0 0 0\nv 1 0 0\nv 0 1 0\n')
    with pytest.raises(InputError, match='identity001.obj has 3 vertices, expected 26719'): convert_ict(d, tmp_path / 'x.npz', allow_partial=True)
