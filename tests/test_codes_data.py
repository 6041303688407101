"""facebench.codes.data: the synthetic FaceScape-like set and the FaceScape TU loader.

References: `MorphableModel.forward` (the LBS path, independent of the set's own zero-pose blend), the ICT kit's FACS
table `AU_TABLE`, hand-written recipe checks, and OBJ folders written by numpy text formatting in the test. The synthetic
sets come from the built-in head (about 500 vertices, float64): its 14 expressible classes."""
from pathlib import Path
import numpy as np, pytest, torch
from facebench.core import InputError
from facebench.models.base import ModelData, MorphableModel
from facebench.models.builtin import builtin_head, BUILTIN_AUS
from facebench.codes.data import (CODE_CONTROLS, EXPRESSION_RECIPES, FACESCAPE_EXPRESSIONS, control_matrix, expression_index,
                                  expressible_classes, farthest_points, load_facescape, recipe_table, synthetic_set)

ASSETS = Path(__file__).resolve().parent.parent.parent / 'shared' / 'assets' / 'ict-facekit'
NPZ = ASSETS / 'ict_facekit_light.npz'


#: the FaceScape classes the built-in head has no shapes for (no AU29/AU30 jaw thrust or sideways jaw, no sideways
#: mouth, no AU33 cheek puff), written out by hand
NOT_SHOWN = ('jaw_left', 'jaw_right', 'jaw_forward', 'mouth_left', 'mouth_right', 'cheek_blowing')
CLASSES = [c for c, n in enumerate(FACESCAPE_EXPRESSIONS) if n not in NOT_SHOWN]   # 14


@pytest.fixture(scope='module')
def head():
    return builtin_head(n_vertices=500, n_shape=4, dtype=torch.float64)


def reference_mesh(model, shape, weights, scale):
    "The model's own forward pass (LBS, zero pose), scaled about the template centroid, in mm."
    v = model(shape=shape[None], expression=weights[None]).vertices[0].double()
    c = model.v_template.double().mean(0)
    return (c + scale * (v - c)) * {'m': 1000.0, 'cm': 10.0}[model.units]


def test_expression_table_matches_facescape_order():
    # FaceScape's file names 1_neutral ... 20_brow_lower (3DFaceCAM's id_to_exp, FaceScape docs)
    files = ['1_neutral', '2_smile', '3_mouth_stretch', '4_anger', '5_jaw_left', '6_jaw_right', '7_jaw_forward', '8_mouth_left',
             '9_mouth_right', '10_dimpler', '11_chin_raiser', '12_lip_puckerer', '13_lip_funneler', '14_sadness', '15_lip_roll',
             '16_grin', '17_cheek_blowing', '18_eye_closed', '19_brow_raiser', '20_brow_lower']
    for f in files:
        k, name = f.split('_', 1)
        assert expression_index(name) == int(k) - 1
    assert set(EXPRESSION_RECIPES) == set(FACESCAPE_EXPRESSIONS)
    assert all(c in CODE_CONTROLS for r in EXPRESSION_RECIPES.values() for c in r)
    T = recipe_table()
    assert T[0].abs().sum() == 0 and bool((T[1:].abs().sum(1) > 0).all())
    assert len({tuple(r.tolist()) for r in T}) == 20                           # every class is a different recipe


@pytest.mark.parametrize('bad', ['laugh', '', 20, -1, 'smile!'])
def test_unknown_expression_class(bad):
    with pytest.raises(InputError, match='expression class'):
        expression_index(bad)


def test_synthetic_set_matches_model_forward(head):
    ds = synthetic_set(head, n_identities=4, samples_per_class=2, classes=CLASSES, seed=3, dtype=torch.float64)
    assert len(ds) == 4 * 14 * 2
    counts = torch.bincount(ds.identity * 20 + ds.expression, minlength=80).reshape(4, 20)
    assert bool((counts[:, CLASSES] == 2).all()) and counts.sum() == len(ds)
    for i in [0, 17, 55, 111]:
        ref = reference_mesh(head, ds.shape[ds.identity[i]], ds.weights[i], ds.scale[ds.identity[i]])
        torch.testing.assert_close(ds.vertices[i], ref, atol=1e-9, rtol=0)
    # neutrals are the zero-expression meshes
    for k in range(4):
        ref = reference_mesh(head, ds.shape[k], torch.zeros(head.n_expression, dtype=torch.float64), ds.scale[k])
        torch.testing.assert_close(ds.neutrals[k], ref, atol=1e-9, rtol=0)


def test_labels_recipes_and_jitter(head):
    ds = synthetic_set(head, n_identities=3, samples_per_class=3, jitter=0.15, intensity_range=(0.5, 1.0), classes=CLASSES, seed=0)
    T = recipe_table()
    for i in range(len(ds)):
        c = int(ds.expression[i]); r = T[c]
        ctrl = ds.controls[i].double()
        assert bool((ctrl[r == 0] == 0).all())                               # only the recipe's controls move
        if c == 0: continue
        ratio = ctrl[r != 0] / (r[r != 0] * float(ds.intensity[i]))
        assert bool(((ratio >= 0.85 - 1e-6) & (ratio <= 1.15 + 1e-6)).all())
        assert 0.5 <= float(ds.intensity[i]) <= 1.0
    # AU-named shapes: each control drives the shape of its name, AU43 (eyes closed) the blink AU45, the rest nothing
    names = list(BUILTIN_AUS)
    for k, c in enumerate(CODE_CONTROLS):
        if c in names: torch.testing.assert_close(ds.weights[:, names.index(c)], ds.controls[:, k].double())
    torch.testing.assert_close(ds.weights[:, names.index('AU45')], ds.controls[:, CODE_CONTROLS.index('AU43')].double())
    unused = [names.index(n) for n in names if n not in CODE_CONTROLS and n != 'AU45']
    assert len(unused) == 5 and bool((ds.weights[:, unused] == 0).all())


def test_splits_by_identity(head):
    ds = synthetic_set(head, n_identities=10, split=(0.6, 0.2, 0.2), classes=CLASSES, seed=1)
    s = {k: set(v.tolist()) for k, v in ds.splits.items()}
    assert s['train'] | s['val'] | s['test'] == set(range(10))
    assert not (s['train'] & s['test']) and not (s['train'] & s['val']) and not (s['val'] & s['test'])
    assert [len(s[k]) for k in ('train', 'val', 'test')] == [6, 2, 2]
    te = ds.subset('test')
    assert set(te.identity.tolist()) == s['test'] and len(te) == 2 * 14
    with pytest.raises(InputError, match='split'): synthetic_set(head, n_identities=10, split=(0.5, 0.2, 0.2), classes=CLASSES)
    with pytest.raises(InputError, match='unknown split'): ds.subset('holdout')


def test_swap_ground_truth_exact(head):
    ds = synthetic_set(head, n_identities=4, samples_per_class=1, classes=CLASSES, seed=2, dtype=torch.float64)
    a = torch.tensor([0, 25, 41]); b = torch.tensor([50, 3, 41])
    assert len({int(ds.identity[i]) for i in (0, 50)}) == 2        # a real swap: another person's expression
    gt = ds.swap_ground_truth(a, b)
    for k in range(3):
        ref = reference_mesh(head, ds.shape[ds.identity[a[k]]], ds.weights[b[k]], ds.scale[ds.identity[a[k]]])
        torch.testing.assert_close(gt[k], ref, atol=1e-9, rtol=0)
    torch.testing.assert_close(gt[2], ds.vertices[41], atol=1e-9, rtol=0)  # own expression: the mesh itself
    # A's neutral + A's scale x B's blendshape displacement (mm)
    E = head.exprdirs.double() * 1000
    ref = ds.neutral[0] + ds.scale[ds.identity[0]] * torch.einsum('vce,e->vc', E, ds.weights[50])
    torch.testing.assert_close(gt[0], ref, atol=1e-9, rtol=0)


def test_check_errors(head):
    ds = synthetic_set(head, n_identities=2, classes=CLASSES, seed=0)
    V = head.n_vertices
    with pytest.raises(InputError, match=f'expected {V}'): ds.check(torch.zeros(2, V - 1, 3))
    with pytest.raises(InputError, match='one mesh'): ds.check(torch.zeros(V, 3))
    v = ds.vertices[:2].clone(); v[1, 5, 2] = float('nan')
    with pytest.raises(InputError, match='non-finite.*mesh 1'): ds.check(v)
    with pytest.raises(InputError, match='expression class'): synthetic_set(head, n_identities=2, classes=['smile', 'laugh'])


def test_model_without_controls_is_refused(head):
    d = head.data
    few = ModelData(**{**{f: getattr(d, f) for f in ('name', 'v_template', 'faces', 'shapedirs', 'landmark_faces', 'landmark_bary',
                                                     'regions', 'expression_kind', 'units')},
                       'exprdirs': d.exprdirs[:, :, :2], 'expression_names': ['AU1', 'AU2']})
    with pytest.raises(InputError, match='cannot show class'):
        synthetic_set(MorphableModel(few), n_identities=2)
    ds = synthetic_set(MorphableModel(few), n_identities=2, classes=['neutral', 'brow_raiser'])
    assert set(ds.expression.tolist()) == {0, 18}
    # a class is shown when its recipe moves one of the model's shapes: AU1/AU2 reach sadness and brow_raiser
    assert expressible_classes(MorphableModel(few)) == [0, expression_index('sadness'), expression_index('brow_raiser')]
    with pytest.raises(InputError, match='MorphableModel'): expressible_classes(d)
    pca = ModelData(**{**{f: getattr(d, f) for f in ('name', 'v_template', 'faces', 'shapedirs', 'exprdirs', 'landmark_faces',
                                                     'landmark_bary', 'regions', 'units')}, 'expression_kind': 'pca'})
    with pytest.raises(InputError, match='PCA expressions'): synthetic_set(MorphableModel(pca))


def test_farthest_points_vs_bruteforce():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(60, 3, generator=g, dtype=torch.float64)
    idx = farthest_points(p, 8)
    # independent greedy reference in numpy
    P = p.numpy(); first = int(((P - P.mean(0)) ** 2).sum(1).argmin()); sel = [first]
    for _ in range(7):
        d = np.min(((P[:, None] - P[sel][None]) ** 2).sum(2), 1); sel.append(int(d.argmax()))
    assert idx.tolist() == sorted(sel)


# ------------------------------------------------------------------------------------------------ ICT and the built-in head
@pytest.fixture(scope='module')
def ict():
    if not NPZ.exists(): pytest.skip(f'{NPZ} absent')
    from facebench.models.ict import load_ict
    return load_ict(NPZ, dtype=torch.float64)


def test_ict_control_matrix_follows_kit_table(ict):
    from facebench.models.ict import AU_TABLE
    M, missing = control_matrix(ict.expression_names)
    assert missing == []
    names = ict.expression_names
    for c in ('AU12', 'AU4', 'AU27', 'AU30_L', 'AU14'):
        want = set(AU_TABLE[c][1])
        got = {names[j] for j in M[CODE_CONTROLS.index(c)].nonzero().squeeze(1).tolist()}
        assert got == want
    assert {names[j] for j in M[CODE_CONTROLS.index('mouthLeft')].nonzero().squeeze(1).tolist()} == {'mouthLeft'}
    assert {names[j] for j in M[CODE_CONTROLS.index('AU43')].nonzero().squeeze(1).tolist()} == {'eyeBlink_L', 'eyeBlink_R'}


def test_ict_set_on_a_region_subset(ict):
    ds = synthetic_set(ict, n_identities=3, n_shape=20, vertices='face', n_vertices=300, seed=0, dtype=torch.float64)
    assert ds.vertices.shape == (60, 300, 3)
    ids = ds.vertex_ids
    assert bool(torch.isin(ids, ict.regions['face'].cpu()).all())
    i = 21
    ref = reference_mesh(ict, ds.shape[ds.identity[i]], ds.weights[i], ds.scale[ds.identity[i]])[ids]
    torch.testing.assert_close(ds.vertices[i], ref, atol=1e-7, rtol=0)
    # kept triangles are the model's triangles, re-indexed
    orig = {tuple(sorted(f)) for f in ict.faces.tolist()}
    assert all(tuple(sorted(ids[f].tolist())) in orig for f in ds.faces)
    # smile moves the mouth more than the brows; brow_raiser the reverse
    off = ds.offsets.norm(dim=2)
    def mean_in(cls, region):
        r = ds.regions.get(region)
        return float(off[ds.expression == expression_index(cls)][:, r].mean())
    assert mean_in('smile', 'mouth') > 3 * mean_in('brow_raiser', 'mouth')


def test_builtin_head_classes(head):
    M, missing = control_matrix(head.expression_names)
    assert missing == ['AU29', 'AU30_L', 'AU30_R', 'AU33', 'mouthLeft', 'mouthRight']   # AU43 falls back to the blink AU45
    assert expressible_classes(head) == CLASSES
    with pytest.raises(InputError, match=r"cannot show class\(es\) \['jaw_left'.*expressible_classes"):
        synthetic_set(head, n_identities=2)
    ds = synthetic_set(head, n_identities=2, classes=CLASSES, seed=0)
    assert sorted(set(ds.expression.tolist())) == CLASSES


# ------------------------------------------------------------------------------------------------ FaceScape TU loader
def write_obj_text(path: Path, v: np.ndarray, faces: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f'v {x:.6f} {y:.6f} {z:.6f}' for x, y, z in v] + [f'f {a + 1} {b + 1} {c + 1}' for a, b, c in faces]
    path.write_text('\n'.join(lines) + '\n')


@pytest.fixture(scope='module')
def facescape_dir(tmp_path_factory):
    "Two subjects x (neutral, smile, eye_closed) at the real TU vertex count, in FaceScape's layout."
    root = tmp_path_factory.mktemp('facescape_trainset')
    rng = np.random.default_rng(0)
    V = 26317
    faces = np.array([[0, 1, 2], [2, 3, 4], [V - 3, V - 2, V - 1]])
    meshes = {}
    for pid in ('12', '3'):
        for k, name in ((1, 'neutral'), (2, 'smile'), (18, 'eye_closed')):
            v = rng.normal(size=(V, 3)) * 50
            write_obj_text(root / pid / 'models_reg' / f'{k}_{name}.obj', v, faces)
            meshes[(pid, name)] = v
    return root, meshes, faces


def test_load_facescape_layout(facescape_dir):
    root, meshes, faces = facescape_dir
    ds = load_facescape(root, split=(0.5, 0.0, 0.5))
    assert ds.identity_names == ['3', '12']                    # numeric order of the subject folders
    assert ds.vertices.shape == (6, 26317, 3) and ds.n_vertices == 26317
    assert [FACESCAPE_EXPRESSIONS[c] for c in ds.expression.tolist()] == ['neutral', 'smile', 'eye_closed'] * 2
    np.testing.assert_allclose(ds.vertices[4].double().numpy(), meshes[('12', 'smile')], atol=1e-4)
    np.testing.assert_allclose(ds.neutral[4].double().numpy(), meshes[('12', 'neutral')], atol=1e-4)
    assert ds.faces.tolist() == faces.tolist()
    torch.testing.assert_close(ds.controls[1].double(), recipe_table()[1])
    sub = load_facescape(root, identities=['12'], classes=['eye_closed'])
    assert sub.expression.tolist() == [0, 17]                   # the neutral is always read


def test_load_facescape_errors(tmp_path, facescape_dir):
    root, _, faces = facescape_dir
    with pytest.raises(InputError, match='expected 26316'):
        load_facescape(root, n_vertices=26316)                 # wrong topology
    with pytest.raises(FileNotFoundError): load_facescape(tmp_path / 'absent')
    V = 26317
    good = np.zeros((V, 3))
    cases = {'3_laugh.obj': 'unknown expression class', '3_smile.obj': 'numbers', 'smile.obj': 'expected a name'}
    for fname, msg in cases.items():
        d = tmp_path / fname.replace('.', '_')
        write_obj_text(d / '1' / 'models_reg' / '1_neutral.obj', good, faces)
        write_obj_text(d / '1' / 'models_reg' / fname, good, faces)
        with pytest.raises(InputError, match=msg): load_facescape(d)
    d = tmp_path / 'no_neutral'
    write_obj_text(d / '1' / 'models_reg' / '2_smile.obj', good, faces)
    with pytest.raises(InputError, match='1_neutral'): load_facescape(d)
    d = tmp_path / 'nan'
    bad = good.copy(); bad[7, 1] = np.nan
    write_obj_text(d / '1' / 'models_reg' / '1_neutral.obj', bad, faces)
    with pytest.raises(InputError, match='(?i)nan|non-finite|number'): load_facescape(d)
    with pytest.raises(InputError, match='identity folder'): load_facescape(root, identities=['99'])
