"""AUFART evaluation: ICC(3,1) against a two-way ANOVA written here with numpy, the temporal metrics on a network
that predicts psi = 0 (jitter 0, acceleration error = the truth's acceleration), the table, the plots, bad input."""
import numpy as np, pytest, torch
from facebench.core import InputError
from facebench.metrics.temporal import acceleration
from facebench.metrics.geometry import to_mm
from facebench.aufart.evaluate import (AufartEval, evaluate_run, icc, markdown_table, plot_per_au, predict, sequence_metrics)
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
    # Shrout & Fleiss (1979) table, judges 1 and 3
    a = torch.tensor([9., 6., 8., 7., 10., 6.], dtype=torch.float64); b = torch.tensor([5., 3., 6., 2., 6., 4.], dtype=torch.float64)
    assert float(icc(a, b)) == pytest.approx(icc31_numpy(np.stack([a.numpy(), b.numpy()], 1)), rel=1e-10)
    g = torch.Generator().manual_seed(0)
    A = torch.rand(40, 5, generator=g, dtype=torch.float64); B = A + 0.3 * torch.randn(40, 5, generator=g, dtype=torch.float64)
    want = [icc31_numpy(np.stack([A[:, j].numpy(), B[:, j].numpy()], 1)) for j in range(5)]
    np.testing.assert_allclose(icc(A, B).numpy(), want, rtol=1e-9)
    assert torch.isnan(icc(torch.zeros(5), torch.zeros(5)))           # both raters constant: undefined
    with pytest.raises(InputError, match='same shape'): icc(A, B[:, :4])
    with pytest.raises(InputError, match='at least 2 targets'): icc(A[:1], B[:1])

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
