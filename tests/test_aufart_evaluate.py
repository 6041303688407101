"""AUFART evaluation: the AU metrics come from facebench.metrics.au (tested in test_metrics_au.py) and ICC(3,1) here
against a two-way ANOVA written with numpy, the temporal metrics on a network that predicts psi = 0 (jitter 0,
acceleration error = the truth's acceleration), the table, the plots, the largest-difference renders, bad input."""
import numpy as np, pytest, torch
from facebench.core import InputError
from facebench.metrics.temporal import acceleration
from facebench.metrics.geometry import to_mm
from facebench.aufart.evaluate import (AufartEval, evaluate_run, plot_per_au, sequence_metrics, heldout_data,
                                       expression_error_per_sample, largest_differences, difference_renders)
from facebench.metrics.speed import markdown_table
from facebench.metrics.au import icc
from facebench.aufart.train import AufartTrainConfig, build, make_datasets
from facebench.aufart.data import synthetic_sequences, SyntheticConfig

def icc31_numpy(Y):
    "Shrout & Fleiss ICC(3,1) of an (n targets, k raters) table, from the ANOVA sums of squares."
    n, k = Y.shape
    m = Y.mean()
    ssr = k * ((Y.mean(1) - m) ** 2).sum(); ssc = n * ((Y.mean(0) - m) ** 2).sum(); sst = ((Y - m) ** 2).sum()
    msr, mse = ssr / (n - 1), (sst - ssr - ssc) / ((n - 1) * (k - 1))
    return (msr - mse) / (msr + (k - 1) * mse)

def test_icc_against_anova():
    # Shrout & Fleiss (1979) table, judges 1 and 3, as two raters
    a = torch.tensor([9., 6., 8., 7., 10., 6.], dtype=torch.float64); b = torch.tensor([5., 3., 6., 2., 6., 4.], dtype=torch.float64)
    assert float(icc(torch.stack([a, b], 1))) == pytest.approx(icc31_numpy(np.stack([a.numpy(), b.numpy()], 1)), rel=1e-10)
    g = torch.Generator().manual_seed(0)
    A = torch.rand(40, 5, generator=g, dtype=torch.float64); B = A + 0.3 * torch.randn(40, 5, generator=g, dtype=torch.float64)
    want = [icc31_numpy(np.stack([A[:, j].numpy(), B[:, j].numpy()], 1)) for j in range(5)]
    np.testing.assert_allclose(icc(torch.stack([A, B], 1)).numpy(), want, rtol=1e-9)
    import facebench.metrics as fm, facebench.metrics.au as fmau
    assert fm.icc is fmau.icc                                          # facebench.metrics re-exports the AU metrics

def test_evaluate_run_on_a_fresh_head(tmp_path):
    cfg = AufartTrainConfig(out=str(tmp_path), n_train=4, n_val=6, image_size=32, progress=False)
    model, net = build(cfg)                                           # zero-initialised head: predicts psi = 0
    _, val = make_datasets(model, cfg)
    seqs = synthetic_sequences(model, 2, 5, SyntheticConfig(image_size=32), 1)
    r = evaluate_run(net, model, val, cfg, 'fresh', seqs, 5)
    assert r.expr_vertex_mm == pytest.approx(r.zero_expr_vertex_mm, abs=1e-9) and r.zero_expr_vertex_mm > 0
    assert set(r.expr_vertex_mm_regions) == set(model.regions) and len(r.au_f1) == len(r.au_icc) == 27
    # psi = 0 on every frame: the predicted sequence does not move, so its jitter is 0 and the acceleration error is
    # the true sequence's own acceleration (facebench.metrics.temporal.acceleration)
    assert r.jitter_mm == pytest.approx(0, abs=1e-4)        # float32 round-off only
    vg = to_mm(model(shape=seqs.params.shape, expression=seqs.params.expression, jaw_pose=seqs.params.jaw_pose).vertices, 'm', check=False)
    want = np.mean([float(acceleration(v)) for v in vg.view(2, 5, -1, 3)])
    assert r.accel_error_mm == pytest.approx(want, rel=1e-4)
    assert r.jitter_gt_mm > 0
    t = markdown_table([r, r])
    assert t.count('\n') == 3 and t.startswith('| run | expr_mm | zero_mm |') and '| fresh |' in t
    import matplotlib; matplotlib.use('Agg')
    ax = plot_per_au([r], 'au_icc')
    assert len(ax.patches) == 27
    with pytest.raises(InputError, match="'au_f1' or 'au_icc'"): plot_per_au([r], 'nme')
    with pytest.raises(InputError, match='whole number of sequences'): sequence_metrics(net, model, seqs, 4, cfg)
    with pytest.raises(InputError, match='at least 4 frames'): sequence_metrics(net, model, seqs[:6], 3, cfg)

def test_largest_differences_and_renders(tmp_path):
    cfg = AufartTrainConfig(out=str(tmp_path), n_train=4, n_val=6, image_size=32, progress=False)
    model, _ = build(cfg)
    val = heldout_data(model, cfg)
    gt = val.params.expression.clone()
    pa = {'expression': gt.clone(), 'jaw_pose': gt.new_zeros(6, 0)}    # run A: exact expression, no jaw output
    pb = {'expression': gt.clone()}
    pb['expression'][4] += 2.0; pb['expression'][1] += 0.5             # run B: wrong on samples 4 (most) and 1
    # per-sample error against a direct numpy computation on the model's vertices
    vb = model(shape=val.params.shape, expression=pb['expression']).vertices.double().numpy()
    vg = model(shape=val.params.shape, expression=gt).vertices.double().numpy()
    want = np.linalg.norm(vb - vg, axis=-1).mean(1) * (1000 if model.units == 'm' else 10)
    np.testing.assert_allclose(expression_error_per_sample(model, val, pb).double().numpy(), want, rtol=1e-4, atol=1e-6)
    idx, ea, eb = largest_differences(model, val, pa, pb, k=2)
    assert idx.tolist() == [4, 1] and float(ea.abs().max()) < 1e-3 and eb[0] > eb[1] > 0
    mouth = expression_error_per_sample(model, val, pb, region='mouth')
    assert mouth.shape == (6,) and torch.isfinite(mouth).all()
    fig = difference_renders(model, val, pa, pb, k=2, names=('exact', 'off'))
    assert len(fig.axes) == 8 and fig.axes[1].get_title() == 'exact\n0.00 mm' and fig.axes[0].get_title() == 'input #4'
    # run A predicts the true expression: its render is the ground-truth render, and both equal the input on the face
    A, G, I = (np.asarray(fig.axes[j].images[0].get_array()) for j in (1, 3, 0))
    np.testing.assert_allclose(A, G, atol=1e-5)
    m = val.mask[4, 0].numpy() > 0.999
    np.testing.assert_allclose(G[m], I[m], atol=1e-4)
    assert np.abs(np.asarray(fig.axes[2].images[0].get_array()) - G).max() > 0.05   # run B's open-mouth error shows
    with pytest.raises(InputError, match='`k`'): largest_differences(model, val, pa, pb, k=7)
    with pytest.raises(InputError, match='region'): largest_differences(model, val, pa, pb, region='tail')
    with pytest.raises(InputError, match="pred\\['expression'\\]"): expression_error_per_sample(model, val, {'expression': gt[:3]})
