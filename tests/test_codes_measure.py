"""facebench.codes.measure: probes, errors, sweeps, the table and the explorer.

References: scikit-learn's Ridge / r2_score for the AU probe, numpy for region means and the roughness of analytic
sequences, and an exactly linear set of the built-in head (no head-scale variation; its 14 classes reach 19 AU shapes)
on which a full-rank split PCA must transfer and sweep with zero error."""
import math
import numpy as np, pytest, torch
from facebench.core import InputError
from facebench.models.builtin import builtin_head
from facebench.codes.data import CODE_CONTROLS, synthetic_set, expressible_classes, recipe_vector, control_matrix
from facebench.codes.pca import fit_joint_pca, fit_split_pca
from facebench.codes.measure import (MEASURES, MeasureConfig, codes_explorer, measure_codes, probe_accuracy, probe_r2,
                                     roughness, sweep_codes, sweep_meshes)


N_CLASSES, N_EXP = 14, 19


@pytest.fixture(scope='module')
def exact():
    head = builtin_head(n_vertices=500, n_shape=3, dtype=torch.float64)
    ds = synthetic_set(head, n_identities=10, samples_per_class=2, scale_std=0.0, split=(0.6, 0.0, 0.4),
                       classes=expressible_classes(head), seed=0, dtype=torch.float64)
    assert len(torch.unique(ds.expression)) == N_CLASSES and int((ds.weights.abs().sum(0) > 0).sum()) == N_EXP
    return ds, ds.subset('train'), ds.subset('test')


def test_probe_r2_matches_sklearn():
    lm = pytest.importorskip('sklearn.linear_model'); met = pytest.importorskip('sklearn.metrics')
    rng = np.random.default_rng(0)
    z = rng.normal(size=(120, 6)); y = z[:, :3] @ rng.normal(size=(3, 4)) + 0.3 * rng.normal(size=(120, 4))
    zt, yt = torch.tensor(z), torch.tensor(y)
    got = probe_r2(zt[:80], yt[:80], zt[80:], yt[80:], ridge=0.0)
    mu, sd = z[:80].mean(0), z[:80].std(0, ddof=1)
    ref = lm.Ridge(alpha=0.0).fit((z[:80] - mu) / sd, y[:80])
    want = met.r2_score(y[80:], ref.predict((z[80:] - mu) / sd), multioutput='uniform_average')
    assert abs(got - want) < 1e-8


def test_probe_accuracy_separable_and_random():
    g = torch.Generator().manual_seed(1)
    y = torch.arange(300) % 3
    z = torch.randn(300, 4, generator=g, dtype=torch.float64); z[:, 0] += 6 * y
    assert probe_accuracy(z[:150], y[:150], z[150:], y[150:]) > 0.97
    assert probe_accuracy(z[:150], y[:150], z[150:], y[150:], MeasureConfig(probe_hidden=0)) > 0.8   # linear: slower to fit the middle class
    noise = torch.randn(300, 4, generator=g, dtype=torch.float64)
    assert probe_accuracy(noise[:150], y[:150], noise[150:], y[150:]) < 0.55


def test_roughness_analytic():
    line = torch.arange(6.0)[:, None, None] * torch.ones(1, 2, 3)
    assert roughness(line) == 0.0
    quad = (torch.arange(6.0) ** 2)[:, None, None] * torch.ones(1, 1, 1)
    # first differences 1,3,5,7,9 (mean 5); second differences all 2
    assert abs(roughness(quad) - 2 / 5) < 1e-12


def test_sweep_meshes_are_recipes(exact):
    ds, _, test = exact
    i = int(test.identity[0])
    seq = sweep_meshes(test, i, 'smile', [0.0, 0.5, 1.0, 1.5])
    torch.testing.assert_close(seq[0], ds.neutrals[i], atol=1e-9, rtol=0)
    # linear in the intensity: equal steps, and 1.5 = neutral + 1.5 x (smile at 1)
    torch.testing.assert_close(seq[3] - seq[0], 1.5 * (seq[2] - seq[0]), atol=1e-9, rtol=0)
    M, _ = control_matrix(ds.model.expression_names)
    w = (recipe_vector('smile') @ M)[None]
    torch.testing.assert_close(seq[2], ds.synthesize(torch.tensor([i]), w)[0], atol=1e-9, rtol=0)


def test_table_on_exact_linear_set(exact):
    ds, train, test = exact
    codecs = {'PCA-split': fit_split_pca(train, 3, N_EXP), 'PCA-joint': fit_joint_pca(train, 3, N_EXP)}
    t = measure_codes(codecs, train, test, MeasureConfig(n_pairs=60, probe_steps=60, sweep_identities=1))
    s = t.rows['PCA-split']
    assert s['rec'] < 1e-8 and s['transfer'] < 1e-8 and s['sweep'] < 1e-8 and s['rough'] < 1e-8
    assert s['au_r2'] > 0.999                       # the AU vector is a linear function of the exact z_exp
    assert t.chance['id'] == 0.25 and abs(t.chance['cls'] - 1 / N_CLASSES) < 1e-12   # balanced classes: 1/14
    assert set(t.winners()) == set(MEASURES)
    md = t.to_markdown()
    assert md.count('\n') >= len(MEASURES) + 1 and 'PCA-split' in md and 'chance 0.250' in md
    # transfer is scored against the ground truth, not against the source mesh
    assert t.info['pairs'] == 60


def test_region_table_matches_numpy(exact):
    "Reconstruction errors of a truncated code, overall and per region, against numpy; empty regions are left out."
    ds, train, test = exact
    c = fit_split_pca(train, 2, 4)                                # truncated: errors are not zero
    test = test.subset(torch.arange(len(test)))
    test.regions = {**test.regions, 'nothing': torch.zeros(0, dtype=torch.long)}
    t = measure_codes({'x': c}, train, test, MeasureConfig(n_pairs=4, probe_steps=2, sweep_identities=0))
    d = np.linalg.norm(c.reconstruct(test.vertices).numpy() - test.vertices.numpy(), axis=2)   # (N,V) mm
    assert d.mean() > 0.01
    want = {'all': d.mean(), **{k: d[:, np.asarray(i)].mean() for k, i in test.regions.items() if len(i)}}
    assert set(t.regions['x']) == set(want) and 'nothing' not in t.regions['x']
    for k, v in want.items(): assert t.regions['x'][k] == pytest.approx(float(v), rel=1e-12), k
    assert t.rows['x']['rec'] == t.regions['x']['all']


def test_measure_errors(exact):
    ds, train, test = exact
    with pytest.raises(InputError, match='same total dimension'):
        measure_codes({'a': fit_split_pca(train, 3, 5), 'b': fit_split_pca(train, 3, 6)}, train, test)
    with pytest.raises(InputError, match='empty'): measure_codes({}, train, test)
    bad = test.subset(torch.arange(len(test))); bad.vertices = bad.vertices.clone(); bad.vertices[3, 2, 1] = float('nan')
    with pytest.raises(InputError, match='non-finite'):
        measure_codes({'a': fit_split_pca(train, 3, 5)}, train, bad)


def test_explorer_headless(exact):
    ds, train, test = exact
    codecs = {'PCA-split': fit_split_pca(train, 3, 10), 'PCA-joint': fit_joint_pca(train, 3, 10)}
    ui = codes_explorer(codecs, test, n_directions=2)
    ids = torch.unique(test.identity).tolist()
    meshes = lambda: [t for t in ui.figure.data if t.type == 'mesh3d']
    xyz = lambda t: np.stack([t.x, t.y, t.z], 1)
    ui.controls['class'].value = 'mouth_stretch'; ui.controls['intensity'].value = 0.5
    gt = sweep_meshes(test, ids[0], 'mouth_stretch', [0.5])
    np.testing.assert_allclose(xyz(meshes()[0]), gt[0].numpy(), atol=1e-9)
    c = codecs['PCA-split']
    np.testing.assert_allclose(xyz(meshes()[1]), c.reconstruct(gt)[0].numpy(), atol=1e-8)
    np.testing.assert_allclose(meshes()[1].intensity, np.linalg.norm(c.reconstruct(gt)[0].numpy() - gt[0].numpy(), axis=1), atol=1e-8)
    # a direction slider moves z_exp by value x std along the code's principal direction
    ui.sliders[('PCA-split', 0)].value = 1.0
    moved = xyz(meshes()[1]) - c.reconstruct(gt)[0].numpy()
    assert np.abs(moved).max() > 1e-3
    ui.sliders[('PCA-split', 0)].value = 0.0
    # swap: the other identity's z_id under this expression, scored against that identity's exact mesh
    ui.controls['swap'].value = ids[1]
    gt_b = sweep_meshes(test, ids[1], 'mouth_stretch', [0.5])
    np.testing.assert_allclose(xyz(meshes()[0]), gt_b[0].numpy(), atol=1e-9)
    expect = c.decode(c.encode(gt_b).z_id, c.encode(gt).z_exp)[0]
    np.testing.assert_allclose(xyz(meshes()[1]), expect.numpy(), atol=1e-8)
    assert 'swap' in ui.children[0].children[-1].value
    # AU mix
    ui.controls['swap'].value = -1; ui.controls['mode'].value = 'AU mix'
    ui.au['AU12'].value = 0.8
    M, _ = control_matrix(test.model.expression_names)
    w = (recipe_vector('neutral') + 0.8 * torch.nn.functional.one_hot(torch.tensor(CODE_CONTROLS.index('AU12')), len(CODE_CONTROLS)).double()) @ M
    np.testing.assert_allclose(xyz(meshes()[0]), test.synthesize(torch.tensor([ids[0]]), w[None])[0].numpy(), atol=1e-9)
    with pytest.raises(InputError, match='vertices'):
        codes_explorer({'x': fit_split_pca(train, 3, 5)}, test.subset(torch.arange(3)).__class__(
            **{**test.__dict__, 'vertices': test.vertices[:, :50], 'neutrals': test.neutrals[:, :50]}))
