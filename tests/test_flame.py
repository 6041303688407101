"""FLAME loader: random models written in FLAME's file formats at test time (never a real FLAME file), compared with smplx."""
import importlib.util, os, pickle, sys, types
from contextlib import contextmanager
from pathlib import Path
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from facebench.core import InputError
from facebench.models.base import REGION_NAMES, contour_row
from facebench.models.flame import FLAME_JOINTS, flame_files, load_flame, read_flame_data, _read_obj_uv

smplx = pytest.importorskip('smplx')
from smplx.lbs import find_dynamic_lmk_idx_and_bcoords

MASK_NAMES = ['eye_region', 'neck', 'left_eyeball', 'right_eyeball', 'right_ear', 'right_eye_region', 'forehead', 'lips',
              'nose', 'scalp', 'boundary', 'face', 'left_ear', 'left_eye_region']

# ---------------------------------------------------------------------------------------------------------------
# writing FLAME-format files without chumpy

_RECONSTRUCT = np.arange(2.0).__reduce__()[0]

class _Py2Pickler(pickle.Pickler):
    "Pickles arrays the way Python 2 numpy did: raw data as a (latin-1 decoded) string, not `_codecs.encode` bytes."
    def reducer_override(self, obj):
        if type(obj) is np.ndarray and obj.dtype != object:
            a = np.ascontiguousarray(obj)
            return _RECONSTRUCT, (np.ndarray, (0,), 'b'), (1, a.shape, a.dtype, False, a.tobytes().decode('latin1'))
        return NotImplemented

def _dump_py2(obj, path):
    "Protocol-2 pickle that names numpy as FLAME 2020 files do (`numpy.core.multiarray`)."
    import io
    buf = io.BytesIO(); _Py2Pickler(buf, protocol=2).dump(obj)
    data = buf.getvalue().replace(b'cnumpy._core.multiarray\n_reconstruct\n', b'cnumpy.core.multiarray\n_reconstruct\n')
    Path(path).write_bytes(data)

@contextmanager
def _fake_modules():
    "Fake `chumpy`, `chumpy.ch` and old-style `scipy.sparse.csc` modules, present only while pickling."
    saved = {k: sys.modules.get(k) for k in ('chumpy', 'chumpy.ch', 'scipy.sparse.csc')}
    top, ch, csc = (types.ModuleType(n) for n in ('chumpy', 'chumpy.ch', 'scipy.sparse.csc'))

    class Ch:   # chumpy's Ch pickles its __dict__ minus _parents/_cache; a plain Ch keeps its array in 'x'
        def __init__(self, x):
            self.__dict__.update(_dirty_vars=set(), _itr=None, _make_dense=False, _make_sparse=False, _depends_on_deps={},
                                 x=np.asarray(x, np.float64))
        def __getstate__(self): return dict(self.__dict__)
    Ch.__module__, Ch.__qualname__ = 'chumpy.ch', 'Ch'

    class csc_matrix:   # scipy < 1.8 pickled its CSC matrices under scipy.sparse.csc
        def __init__(self, dense):
            m = sp.csc_matrix(dense)
            self.__dict__.update(_shape=m.shape, maxprint=50, format='csc', indices=m.indices, indptr=m.indptr, data=m.data)
    csc_matrix.__module__, csc_matrix.__qualname__ = 'scipy.sparse.csc', 'csc_matrix'

    ch.Ch, top.ch, top.Ch, csc.csc_matrix = Ch, ch, Ch, csc_matrix
    sys.modules.update({'chumpy': top, 'chumpy.ch': ch, 'scipy.sparse.csc': csc})
    try: yield Ch, csc_matrix
    finally:
        for k, v in saved.items():
            if v is None: sys.modules.pop(k, None)
            else: sys.modules[k] = v

def _f32(a): return a.astype(np.float32).astype(np.float64)   # values exactly representable in DECA's float32 tensors

def write_random_flame(d, n_vertices=500, n_faces=1000, chumpy=True, rng=None, n_components=400, name='generic_model.pkl',
                       edit=None):
    """A random but valid FLAME-layout model and its companion files in `d`; returns the arrays and paths.
    `chumpy=True` writes chumpy `Ch` arrays and an old-path scipy CSC regressor, as FLAME 2020 does; `edit(dict)`
    can break the model dict before it is written."""
    d = Path(d); d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0) if rng is None else rng
    V, F = n_vertices, n_faces
    faces = np.stack([rng.choice(V, 3, replace=False) for _ in range(F)]).astype(np.uint32)
    Jr = np.zeros((5, V))
    for j in range(5):
        idx = rng.choice(V, 12, replace=False); Jr[j, idx] = rng.dirichlet(np.ones(12))
    # float32-representable values: smplx casts every model array through float32 (its `to_np`), even in float64;
    # skinning weights in 1/64 steps sum to exactly 1
    m = dict(v_template=_f32(rng.normal(0, 0.1, (V, 3))), f=faces, shapedirs=_f32(rng.normal(0, 1e-3, (V, 3, n_components))),
             posedirs=_f32(rng.normal(0, 1e-3, (V, 3, 36))), J_regressor=_f32(Jr), weights=np.stack([rng.multinomial(64, q) / 64 for q in rng.dirichlet(np.ones(5) * 0.5, V)]),
             kintree_table=np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.uint32), bs_style='lbs', bs_type='lrotmin')
    bary = lambda *s: _f32(rng.dirichlet(np.ones(3), s))
    lmk = dict(static=(rng.integers(0, F, 51).astype(np.uint32), bary(51)),
               dynamic=(rng.integers(0, F, (79, 17)).astype(np.uint32), bary(79, 17)),
               mediapipe=(rng.integers(0, F, 105), bary(105)))
    masks = {k: np.sort(rng.choice(V, int(rng.integers(5, 40)), replace=False)) for k in MASK_NAMES}
    uv = rng.random((V + 37, 2)); faces_uv = rng.integers(0, len(uv), (F, 3))
    eyelids = rng.normal(0, 1e-3, (2, V, 3))
    p = dict(dir=d, model=d / name, static=d / 'flame_static_embedding.pkl', dynamic=d / 'flame_dynamic_embedding.npy',
             deca=d / 'landmark_embedding.npy', mediapipe=d / 'mediapipe_landmark_embedding.npz', masks=d / 'FLAME_masks.pkl',
             obj=d / 'head_template.obj', eyelids=(d / 'l_eyelid.npy', d / 'r_eyelid.npy'))
    out = dict(m if edit is None else edit(dict(m)))
    if chumpy:
        with _fake_modules() as (Ch, OldCsc):
            for k in ('v_template', 'shapedirs', 'posedirs', 'weights'):
                if k in out: out[k] = Ch(out[k])
            if 'J_regressor' in out: out['J_regressor'] = OldCsc(out['J_regressor'])
            _dump_py2(out, p['model'])
    else:
        if 'J_regressor' in out: out['J_regressor'] = sp.csc_matrix(out['J_regressor'])
        with open(p['model'], 'wb') as fh: pickle.dump(out, fh, protocol=2)
    _dump_py2({'lmk_face_idx': lmk['static'][0], 'lmk_b_coords': lmk['static'][1]}, p['static'])
    np.save(p['dynamic'], {'lmk_face_idx': lmk['dynamic'][0], 'lmk_b_coords': lmk['dynamic'][1]}, allow_pickle=True)
    full_f = np.concatenate([lmk['dynamic'][0][0], lmk['static'][0]]).astype(np.int64)[None]
    full_b = np.concatenate([lmk['dynamic'][1][0], lmk['static'][1]])[None]
    np.save(p['deca'], {'static_lmk_faces_idx': lmk['static'][0].astype(np.int64), 'static_lmk_bary_coords': lmk['static'][1],
                        'dynamic_lmk_faces_idx': torch.from_numpy(lmk['dynamic'][0].astype(np.int64)),
                        'dynamic_lmk_bary_coords': torch.from_numpy(lmk['dynamic'][1].astype(np.float32)),
                        'full_lmk_faces_idx': full_f, 'full_lmk_bary_coords': full_b.astype(np.float32)}, allow_pickle=True)
    np.savez(p['mediapipe'], lmk_face_idx=lmk['mediapipe'][0], lmk_b_coords=lmk['mediapipe'][1], landmark_indices=np.arange(105) * 4)
    _dump_py2(masks, p['masks'])
    with open(p['obj'], 'w') as fh:
        fh.write('mtllib template.mtl\n' + ''.join(f'v {a:.6f} {b:.6f} {c:.6f}\n' for a, b, c in m['v_template']))
        fh.write(''.join(f'vt {a:.6f} {b:.6f}\n' for a, b in uv))
        fh.write(''.join(f'f {a+1}/{x+1} {b+1}/{y+1} {c+1}/{z+1}\n' for (a, b, c), (x, y, z) in zip(m['f'].astype(int), faces_uv)))
    for e, q in zip(eyelids, p['eyelids']): np.save(q, e)
    return dict(model=m, lmk=lmk, masks=masks, uv=np.round(uv, 6), faces_uv=faces_uv, eyelids=eyelids, paths=p)

def _smplx_dir(d, fx):
    "The same model as plain numpy files in smplx's layout (FLAME_NEUTRAL.pkl + RingNet embeddings)."
    d = Path(d); d.mkdir(parents=True, exist_ok=True)
    with open(d / 'FLAME_NEUTRAL.pkl', 'wb') as fh: pickle.dump(fx['model'], fh, protocol=2)
    with open(d / 'flame_static_embedding.pkl', 'wb') as fh:
        pickle.dump({'lmk_face_idx': fx['lmk']['static'][0], 'lmk_b_coords': fx['lmk']['static'][1]}, fh, protocol=2)
    np.save(d / 'flame_dynamic_embedding.npy', {'lmk_face_idx': fx['lmk']['dynamic'][0], 'lmk_b_coords': fx['lmk']['dynamic'][1]})
    return d

@pytest.fixture(scope='module')
def fx(tmp_path_factory):
    return write_random_flame(tmp_path_factory.mktemp('flame'), rng=np.random.default_rng(1))

def _ringnet(fx): return [fx['paths']['static'], fx['paths']['dynamic']]

def _poses(B, dtype, rng, neck=True):
    g = lambda s: torch.tensor(rng.normal(0, s, (B, 3)), dtype=dtype)
    glob = g(0.25)
    glob[:3, 1] = torch.tensor([0.8, -0.8, 0.3], dtype=dtype)[:B]    # yaw beyond ±39°: the contour table's clamp
    kw = dict(shape=torch.tensor(rng.normal(0, 1, (B, 300)), dtype=dtype), expression=torch.tensor(rng.normal(0, 1, (B, 100)), dtype=dtype),
              global_pose=glob, neck_pose=g(0.25) if neck else torch.zeros(B, 3, dtype=dtype), jaw_pose=g(0.3),
              eye_pose=torch.cat([g(0.3), g(0.3)], 1))
    return kw

def _rel(a, b): return float((a - b).abs().max() / b.abs().max())

# ---------------------------------------------------------------------------------------------------------------
# the model against smplx

def test_fixture_is_chumpy_flavoured_and_chumpy_absent(fx):
    "The model file names chumpy, the old scipy path and Python 2 numpy, as FLAME 2020 does; none of chumpy is importable."
    import pickletools
    names = {arg for op, arg, _ in pickletools.genops(fx['paths']['model'].read_bytes()) if op.name == 'GLOBAL'}
    assert {'chumpy.ch Ch', 'scipy.sparse.csc csc_matrix', 'numpy.core.multiarray _reconstruct', '__builtin__ set'} <= names, names
    assert importlib.util.find_spec('chumpy') is None and 'chumpy' not in sys.modules and 'chumpy.ch' not in sys.modules

def test_arrays_match_file(fx):
    data = read_flame_data(fx['paths']['model'], _ringnet(fx))
    m = fx['model']
    assert data.name == 'flame2020' and data.units == 'm' and data.expression_kind == 'pca'
    assert data.joint_names == FLAME_JOINTS and list(data.parents) == [-1, 0, 1, 1, 1]
    np.testing.assert_array_equal(data.v_template, m['v_template'])
    np.testing.assert_array_equal(data.shapedirs, m['shapedirs'][:, :, :300])
    np.testing.assert_array_equal(data.exprdirs, m['shapedirs'][:, :, 300:])
    np.testing.assert_array_equal(data.J_regressor, m['J_regressor'])
    np.testing.assert_array_equal(data.faces, m['f'])
    # smplx's layout: posedirs (V,3,36) -> (36, 3V), row k column 3v+c
    k, v, c = 7, 123, 2
    assert data.posedirs.shape == (36, 3 * 500) and data.posedirs[k, 3 * v + c] == m['posedirs'][v, c, k]

def _exact_rodrigues(rot_vecs, epsilon=None, dtype=None):
    "Rotation matrices by scipy, for smplx.lbs.batch_rodrigues (which adds 1e-8 to the axis-angle before its norm)."
    from scipy.spatial.transform import Rotation
    return torch.as_tensor(Rotation.from_rotvec(rot_vecs.detach().cpu().double().numpy()).as_matrix(), dtype=rot_vecs.dtype)

@pytest.mark.parametrize('dtype, exact, tol', [(torch.float64, True, 1e-13), (torch.float64, False, 1e-7), (torch.float32, False, 1e-6)])
@pytest.mark.parametrize('neck', [False, True])
def test_matches_smplx(fx, tmp_path, monkeypatch, dtype, exact, tol, neck):
    "Vertices, joints and landmarks against smplx.FLAME (B=6, all five joints, yaw past the ±39° clamp)."
    B = 6
    if exact: monkeypatch.setattr(smplx.lbs, 'batch_rodrigues', _exact_rodrigues)
    ours = load_flame(fx['paths']['model'], _ringnet(fx), dtype=dtype)
    ref = smplx.FLAME(model_path=str(_smplx_dir(tmp_path, fx)), num_betas=300, num_expression_coeffs=100, use_face_contour=True,
                      dtype=dtype, batch_size=B)
    if neck:   # smplx reads the yaw from the root only (NECK_IDX=0); DECA and FLAME_PyTorch compose neck and root
        ref.neck_kin_chain = torch.tensor([1, 0])
    kw = _poses(B, dtype, np.random.default_rng(2), neck=neck)
    o = ours(**kw)
    with torch.no_grad():
        r = ref(betas=kw['shape'], expression=kw['expression'], global_orient=kw['global_pose'], neck_pose=kw['neck_pose'],
                jaw_pose=kw['jaw_pose'], leye_pose=kw['eye_pose'][:, :3], reye_pose=kw['eye_pose'][:, 3:])
    # measured: float64 ~3e-9 with smplx's own Rodrigues (its +1e-8), ~1e-16 with exact rotations; float32 ~2e-7
    # smplx's joints: the 5 joints, then the 51 static landmarks, then the 17 dynamic ones
    assert r.joints.shape == (B, 5 + 51 + 17, 3)
    errs = dict(vertices=_rel(o.vertices, r.vertices), joints=_rel(o.joints, r.joints[:, :5]),
                static=_rel(o.landmarks[:, 17:], r.joints[:, 5:56]), contour=_rel(o.landmarks[:, :17], r.joints[:, 56:]))
    print(dtype, 'exact' if exact else 'smplx rodrigues', 'neck' if neck else 'no neck', errs)
    assert all(e < tol for e in errs.values()), errs

def test_contour_row_matches_smplx():
    "The row chosen for the yaw, swept over ±70° with pitch, roll and neck, against smplx's lookup (DECA's neck chain)."
    rng = np.random.default_rng(3)
    n = 561
    pose = torch.tensor(rng.normal(0, 0.15, (n, 5, 3)))
    pose[:, 0, 1] = torch.deg2rad(torch.linspace(-70, 70, n, dtype=torch.float64))
    table = torch.arange(79)[:, None].expand(79, 17).contiguous()
    for chain in ([1, 0], [0]):
        p = pose.clone()
        if chain == [0]: p[:, 1] = 0
        ref, _ = find_dynamic_lmk_idx_and_bcoords(torch.zeros(n, 1, 3, dtype=torch.float64), p.reshape(n, -1), table,
                                                  torch.zeros(79, 17, 3, dtype=torch.float64), torch.tensor(chain))
        from facebench.rotations import axis_angle_to_matrix
        ours = contour_row(axis_angle_to_matrix(p), FLAME_JOINTS)
        assert torch.equal(ours, ref[:, 0]), (ours != ref[:, 0]).sum()
        assert set(ours.tolist()) >= {0, 39, 40, 78}   # both clamps are reached

def test_float32_tolerance_measured(fx, tmp_path):
    "float32 against a float64 smplx: the error is rounding only."
    B, rng = 4, np.random.default_rng(4)
    kw = _poses(B, torch.float64, rng)
    o64 = load_flame(fx['paths']['model'], _ringnet(fx), dtype=torch.float64)(**kw)
    o32 = load_flame(fx['paths']['model'], _ringnet(fx), dtype=torch.float32)(**{k: v.float() for k, v in kw.items()})
    err = _rel(o32.vertices.double(), o64.vertices)
    print('float32 vs float64 relative error', err)
    assert err < 1e-6

# ---------------------------------------------------------------------------------------------------------------
# landmark formats, regions, UVs, eyelids, npz

def test_deca_and_ringnet_agree(fx):
    kw = _poses(3, torch.float64, np.random.default_rng(5))
    a = load_flame(fx['paths']['model'], _ringnet(fx), dtype=torch.float64)
    b = load_flame(fx['paths']['model'], fx['paths']['deca'], dtype=torch.float64)
    assert torch.equal(a.landmark_faces, b.landmark_faces) and torch.equal(a.contour_faces, b.contour_faces)
    assert torch.equal(a(**kw).landmarks, b(**kw).landmarks)

def test_landmarks_are_the_embedded_points(fx):
    "Static landmarks at zero pose are barycentric points of the template's faces, in iBUG order 17-67."
    m = load_flame(fx['paths']['model'], _ringnet(fx), dtype=torch.float64)
    lm = m(batch_size=1).landmarks[0].numpy()
    f, b = fx['lmk']['static']
    tri = fx['model']['v_template'][fx['model']['f'].astype(int)[f.astype(int)]]
    np.testing.assert_allclose(lm[17:], np.einsum('lk,lkc->lc', b, tri), atol=1e-14)
    f, b = fx['lmk']['dynamic'][0][0], fx['lmk']['dynamic'][1][0]     # yaw 0 -> row 0
    tri = fx['model']['v_template'][fx['model']['f'].astype(int)[f.astype(int)]]
    np.testing.assert_allclose(lm[:17], np.einsum('lk,lkc->lc', b, tri), atol=1e-14)

def test_mediapipe_set(fx):
    m = load_flame(fx['paths']['model'], _ringnet(fx) + [fx['paths']['mediapipe']], dtype=torch.float64)
    kw = _poses(4, torch.float64, np.random.default_rng(6))
    o = m(**kw)
    mp = o.landmark_sets['mediapipe105']
    assert mp.shape == (4, 105, 3)
    f, b = fx['lmk']['mediapipe']
    tri = o.vertices[:, torch.as_tensor(fx['model']['f'].astype(np.int64)[f])]          # (B,105,3,3)
    torch.testing.assert_close(mp, (tri * torch.as_tensor(b)[None, :, :, None]).sum(2), rtol=0, atol=1e-14)

def test_regions_from_masks(fx):
    data = read_flame_data(fx['paths']['model'], _ringnet(fx), masks=fx['paths']['masks'])
    mk = fx['masks']
    assert set(REGION_NAMES) <= set(data.regions) and set(MASK_NAMES) <= set(data.regions)
    u = lambda *ks: set().union(*(set(mk[k].tolist()) for k in ks))
    expect = dict(face=u('face'), eyes=u('eye_region', 'left_eye_region', 'right_eye_region', 'left_eyeball', 'right_eyeball'),
                  nose=u('nose'), mouth=u('lips'), ears=u('left_ear', 'right_ear'), neck=u('neck'), scalp=u('scalp'))
    for k, s in expect.items(): assert set(data.regions[k].tolist()) == s, k
    np.testing.assert_array_equal(data.regions['forehead'], mk['forehead'])

def test_regions_without_masks(fx):
    data = read_flame_data(fx['paths']['model'], _ringnet(fx))
    assert set(data.regions) == set(REGION_NAMES)
    np.testing.assert_array_equal(data.regions['face'], np.arange(500))
    W = fx['model']['weights']
    np.testing.assert_array_equal(data.regions['eyes'], np.flatnonzero(W.argmax(1) >= 3))
    assert all(len(data.regions[k]) == 0 for k in ('nose', 'mouth', 'ears', 'neck', 'scalp'))

def test_uv(fx):
    m = load_flame(fx['paths']['model'], _ringnet(fx), uv_obj=fx['paths']['obj'], dtype=torch.float64)
    np.testing.assert_allclose(m.uv.numpy(), fx['uv'], atol=0)
    np.testing.assert_array_equal(m.faces_uv.numpy(), fx['faces_uv'])

def test_obj_reader_negative_indices(tmp_path):
    p = tmp_path / 'a.obj'
    p.write_text('v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nf -3/-3 -2/-2 -1/-1\nf 1/3 2/2 3/1\n')
    uv, ft, fv = _read_obj_uv(p)
    np.testing.assert_array_equal(fv, [[0, 1, 2], [0, 1, 2]]); np.testing.assert_array_equal(ft, [[0, 1, 2], [2, 1, 0]])
    p.write_text('v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nvt 0 0\nf 1/1 2/1 3/1 4/1\n')
    with pytest.raises(InputError, match=r'line 6: expected a triangle'): _read_obj_uv(p)

def test_eyelids_against_smplx_template(fx, tmp_path, monkeypatch):
    "SMIRK adds the eyelid shapes to the template before skinning: smplx given that template is the reference."
    monkeypatch.setattr(smplx.lbs, 'batch_rodrigues', _exact_rodrigues)
    m = load_flame(fx['paths']['model'], _ringnet(fx), eyelids=fx['paths']['eyelids'], dtype=torch.float64)
    kw = _poses(1, torch.float64, np.random.default_rng(7))
    lid = torch.tensor([[0.7, -0.4]], dtype=torch.float64)
    o = m(eyelids=lid, **kw)
    template = torch.as_tensor(fx['model']['v_template'] + 0.7 * fx['eyelids'][0] - 0.4 * fx['eyelids'][1])   # float64 tensor: smplx keeps it as is
    ref = smplx.FLAME(model_path=str(_smplx_dir(tmp_path, fx)), num_betas=300, num_expression_coeffs=100, use_face_contour=True,
                      dtype=torch.float64, v_template=template)
    ref.neck_kin_chain = torch.tensor([1, 0])
    with torch.no_grad():
        r = ref(betas=kw['shape'], expression=kw['expression'], global_orient=kw['global_pose'], neck_pose=kw['neck_pose'],
                jaw_pose=kw['jaw_pose'], leye_pose=kw['eye_pose'][:, :3], reye_pose=kw['eye_pose'][:, 3:])
    assert _rel(o.vertices, r.vertices) < 1e-13 and _rel(o.landmarks[:, 17:], r.joints[:, 5:56]) < 1e-13

def test_npz_round_trip(fx, tmp_path):
    files = dict(landmark_embedding=_ringnet(fx) + [fx['paths']['mediapipe']], masks=fx['paths']['masks'],
                 uv_obj=fx['paths']['obj'], eyelids=fx['paths']['eyelids'])
    read_flame_data(fx['paths']['model'], **files).save_npz(tmp_path / 'flame.npz')
    a = load_flame(fx['paths']['model'], **files, dtype=torch.float64)
    b = load_flame(tmp_path / 'flame.npz', dtype=torch.float64)
    kw = _poses(3, torch.float64, np.random.default_rng(8))
    kw['eyelids'] = torch.tensor([[0.3, 0.1]] * 3, dtype=torch.float64)
    oa, ob = a(**kw), b(**kw)
    for k in ('vertices', 'landmarks', 'joints'): assert torch.equal(getattr(oa, k), getattr(ob, k)), k
    assert torch.equal(oa.landmark_sets['mediapipe105'], ob.landmark_sets['mediapipe105'])
    assert torch.equal(a.uv, b.uv) and a.regions.keys() == b.regions.keys()

def test_folder_and_flame_files(fx):
    kw = flame_files(fx['paths']['dir'])
    assert kw['path'] == fx['paths']['model'] and kw['landmark_embedding'] == [fx['paths']['deca'], fx['paths']['mediapipe']]
    assert kw['masks'] == fx['paths']['masks'] and kw['uv_obj'] == fx['paths']['obj'] and kw['eyelids'] == fx['paths']['eyelids']
    m = load_flame(fx['paths']['dir'])
    assert m.uv is not None and m.n_eyelids == 2 and 'mediapipe105' in m._landmark_sets and 'lips' in m.regions

def test_plain_numpy_2023_file(tmp_path):
    fx2 = write_random_flame(tmp_path, chumpy=False, name='flame2023_no_jaw.pkl', rng=np.random.default_rng(9))
    m = load_flame(fx2['paths']['model'], _ringnet(fx2), dtype=torch.float64)
    assert m.name == 'flame2023_no_jaw'
    np.testing.assert_array_equal(m.J_regressor.numpy(), fx2['model']['J_regressor'])

def test_old_10_10_release(tmp_path):
    fx2 = write_random_flame(tmp_path, n_components=20, rng=np.random.default_rng(10))
    with pytest.raises(InputError, match=r'`n_shape`=300 requested but .* has 10 identity components .* pass n_shape=10'):
        load_flame(fx2['paths']['model'], _ringnet(fx2))
    m = load_flame(fx2['paths']['model'], _ringnet(fx2), n_shape=10, n_expression=None)
    assert (m.n_shape, m.n_expression) == (10, 10)
    np.testing.assert_array_equal(m.exprdirs.numpy(), fx2['model']['shapedirs'][:, :, 10:].astype(np.float32))
    m = load_flame(fx2['paths']['model'], _ringnet(fx2), n_shape=4, n_expression=3)
    assert (m.n_shape, m.n_expression) == (4, 3)

def test_batched_and_cpu_dtypes(fx):
    m = load_flame(fx['paths']['model'], _ringnet(fx), n_shape=50, n_expression=20, dtype=torch.float64)
    one = [m(shape=torch.full((1, 50), 0.1 * i, dtype=torch.float64), jaw_pose=torch.tensor([[0.1 * i, 0, 0]], dtype=torch.float64)).vertices
           for i in range(3)]
    batch = m(shape=torch.arange(3., dtype=torch.float64)[:, None].expand(3, 50) * 0.1,
              jaw_pose=torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [0.2, 0, 0]], dtype=torch.float64)).vertices
    torch.testing.assert_close(batch, torch.cat(one), rtol=0, atol=1e-15)

@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')
def test_cuda(fx):
    kw = _poses(2, torch.float32, np.random.default_rng(11))
    cpu = load_flame(fx['paths']['model'], _ringnet(fx))(**kw)
    gpu = load_flame(fx['paths']['model'], _ringnet(fx), device='cuda')(**{k: v.cuda() for k, v in kw.items()})
    assert gpu.vertices.is_cuda and _rel(gpu.vertices.cpu(), cpu.vertices) < 1e-5
    assert torch.equal(gpu.landmarks.cpu().isfinite(), cpu.landmarks.isfinite())

# ---------------------------------------------------------------------------------------------------------------
# bad inputs

def test_missing_file(fx, tmp_path):
    with pytest.raises(FileNotFoundError, match=r'FLAME model file .*nope.pkl does not exist.*flame.is.tue.mpg.de'):
        load_flame(tmp_path / 'nope.pkl', _ringnet(fx))
    with pytest.raises(FileNotFoundError, match=r'landmark embedding file .*nope.npy does not exist.*RingNet'):
        load_flame(fx['paths']['model'], tmp_path / 'nope.npy')
    with pytest.raises(FileNotFoundError, match=r'no FLAME model in'):
        load_flame(tmp_path)

def test_truncated_pickle(fx, tmp_path):
    p = tmp_path / 'generic_model.pkl'
    p.write_bytes(fx['paths']['model'].read_bytes()[:100000])
    with pytest.raises(InputError, match=r'generic_model.pkl is not a readable FLAME model pickle .*truncated'):
        load_flame(p, _ringnet(fx))
    q = tmp_path / 'dyn.npy'
    q.write_bytes(fx['paths']['dynamic'].read_bytes()[:300])
    with pytest.raises(InputError, match=r'dyn.npy is not a readable landmark embedding .npy file'):
        load_flame(fx['paths']['model'], [fx['paths']['static'], q])

class _Payload:
    def __init__(self, fn, arg): self.fn, self.arg = fn, arg
    def __reduce__(self): return self.fn, (self.arg,)

@pytest.mark.parametrize('fn', [os.system, eval])
def test_forbidden_class_refused(fx, tmp_path, fn):
    marker = tmp_path / 'pwned'
    cmd = f'touch {marker}' if fn is os.system else f"open({str(marker)!r}, 'w').close()"
    p = tmp_path / 'generic_model.pkl'
    with open(p, 'wb') as fh: pickle.dump({'v_template': _Payload(fn, cmd)}, fh, protocol=2)
    with pytest.raises(InputError, match=rf"generic_model.pkl: refused to load `\w+\.{fn.__name__}` from the pickle"):
        load_flame(p, _ringnet(fx))
    assert not marker.exists()
    q = tmp_path / 'landmark_embedding.npy'   # the .npy path (which admits torch tensors) refuses it too
    np.save(q, {'static_lmk_faces_idx': _Payload(fn, cmd)}, allow_pickle=True)
    with pytest.raises(InputError, match=rf"refused to load `\w+\.{fn.__name__}`"):
        load_flame(fx['paths']['model'], q)
    assert not marker.exists()

def test_torch_tensors_refused_in_model_pickle(fx, tmp_path):
    p = tmp_path / 'generic_model.pkl'
    with open(p, 'wb') as fh: pickle.dump({'v_template': torch.zeros(3, 3)}, fh, protocol=2)
    with pytest.raises(InputError, match=r'refused to load `torch._utils._rebuild_tensor_v2`'):
        load_flame(p, _ringnet(fx))

@pytest.mark.parametrize('edit, match', [
    (lambda m: dict(m, shapedirs=m['shapedirs'][:-1]), r"key 'shapedirs' must have shape \(500, 3, \*\), got \(499, 3, 400\).*flame.is.tue.mpg.de"),
    (lambda m: dict(m, shapedirs=m['shapedirs'][:, :, :399]), r"'shapedirs' must have 400 components .* got 399"),
    (lambda m: {k: v for k, v in m.items() if k != 'weights'}, r"lacks key 'weights' \(expected an array of shape \(500, 5\)\)"),
    (lambda m: dict(m, posedirs=m['posedirs'][:, :, :30]), r"key 'posedirs' must have shape \(500, 3, 36\), got \(500, 3, 30\)"),
    (lambda m: dict(m, f=m['f'] + 10000), r"`faces`.* indexes outside \[0, 500\)"),
])
def test_malformed_model(tmp_path, edit, match):
    fx2 = write_random_flame(tmp_path, rng=np.random.default_rng(12), edit=edit)
    with pytest.raises(InputError, match=match):
        load_flame(fx2['paths']['model'], _ringnet(fx2))

def test_landmark_errors(fx, tmp_path):
    with pytest.raises(InputError, match=r'has no landmarks of its own: pass `landmark_embedding=`.*landmark_embedding.npy'):
        load_flame(fx['paths']['model'])
    with pytest.raises(InputError, match=r'give only the 51 inner landmarks.*flame_dynamic_embedding.npy'):
        load_flame(fx['paths']['model'], fx['paths']['static'])
    with pytest.raises(InputError, match=r"both .* give the 'static' landmarks"):
        load_flame(fx['paths']['model'], _ringnet(fx) + [fx['paths']['deca']])
    with pytest.raises(InputError, match=r'is not a landmark embedding: expected keys'):
        load_flame(fx['paths']['model'], fx['paths']['masks'])
    bad = tmp_path / 'flame_static_embedding.pkl'
    with open(bad, 'wb') as fh: pickle.dump({'lmk_face_idx': np.zeros(50, np.uint32), 'lmk_b_coords': np.zeros((50, 3))}, fh, protocol=2)
    with pytest.raises(InputError, match=r"key 'lmk_face_idx' must have shape \(51\), got \(50,\)"):
        load_flame(fx['paths']['model'], [bad, fx['paths']['dynamic']])
    big = tmp_path / 'mp.npz'
    np.savez(big, lmk_face_idx=np.full(105, 1000), lmk_b_coords=np.full((105, 3), 1 / 3), landmark_indices=np.arange(105))
    with pytest.raises(InputError, match=r"the mediapipe105 embedding indexes faces outside \[0, 1000\)"):
        load_flame(fx['paths']['model'], _ringnet(fx) + [big])

def test_companion_file_errors(fx, tmp_path):
    obj = tmp_path / 'other.obj'
    lines = fx['paths']['obj'].read_text().splitlines()
    i = next(i for i, l in enumerate(lines) if l.startswith('f '))
    lines[i] = 'f ' + ' '.join(lines[i].split()[1:][::-1])       # same face, other winding
    obj.write_text('\n'.join(lines) + '\n')
    with pytest.raises(InputError, match=r"other.obj: its faces do not match the model's"):
        load_flame(fx['paths']['model'], _ringnet(fx), uv_obj=obj)
    with pytest.raises(InputError, match=r'`eyelids` must be a pair of paths'):
        load_flame(fx['paths']['model'], _ringnet(fx), eyelids=fx['paths']['eyelids'][0])
    lid = tmp_path / 'l.npy'; np.save(lid, np.zeros((10, 3)))
    with pytest.raises(InputError, match=r"l.npy: key 'eyelid' must have shape \(500, 3\), got \(10, 3\)"):
        load_flame(fx['paths']['model'], _ringnet(fx), eyelids=(lid, fx['paths']['eyelids'][1]))
    masks = tmp_path / 'FLAME_masks.pkl'
    with open(masks, 'wb') as fh: pickle.dump(dict(fx['masks'], nose=np.array([3, 5000])), fh, protocol=2)
    with pytest.raises(InputError, match=r"region 'nose' indexes vertices outside \[0, 500\)"):
        load_flame(fx['paths']['model'], _ringnet(fx), masks=masks)
    with open(masks, 'wb') as fh: pickle.dump({k: v for k, v in fx['masks'].items() if k != 'lips'}, fh, protocol=2)
    with pytest.raises(InputError, match=r"lacks mask\(s\) \['lips'\] needed for region 'mouth'"):
        load_flame(fx['paths']['model'], _ringnet(fx), masks=masks)

def test_chumpy_expression_refused(tmp_path):
    "A chumpy object that is an expression (no plain 'x' array) cannot be evaluated without chumpy: clear error."
    fx2 = write_random_flame(tmp_path, rng=np.random.default_rng(13))
    raw = fx2['paths']['model'].read_bytes()
    # rename the state key 'x' of the first Ch (v_template) to 'a', as a chumpy operator would store its operand
    i = raw.index(b'X\x01\x00\x00\x00xq')
    fx2['paths']['model'].write_bytes(raw[:i] + b'X\x01\x00\x00\x00aq' + raw[i + 7:])
    with pytest.raises(InputError, match=r"key '\w+' is a chumpy expression \(chumpy.ch.Ch\)"):
        load_flame(fx2['paths']['model'], _ringnet(fx2))
