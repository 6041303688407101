"""facebench.metrics.au against independent references: scikit-learn's f1_score per column, scipy.stats.pearsonr,
Shrout & Fleiss (1979) Table 2 (published ICC values and mean squares) and a two-way ANOVA in plain Python; bad input."""
import numpy as np, pytest, torch
from facebench.core import InputError
from facebench.metrics.au import f1_per_au, pearson_per_au, icc, ICC_FORMS

sklearn_metrics = pytest.importorskip('sklearn.metrics')
stats = pytest.importorskip('scipy.stats')

def rng(seed=0): return np.random.default_rng(seed)

@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_f1_matches_sklearn(dtype):
    r = rng(1)
    pred = r.random((200, 27)); target = (r.random((200, 27)) < 0.3) * r.random((200, 27)) * 1.2   # intensities
    target[:, 5] = 0; pred[:, 5] = 0.1                          # AU5: never active on either side -> undefined
    pred[:, 6] = 0.9; target[:, 6] = 0                          # AU6: only false alarms -> 0
    got = f1_per_au(torch.tensor(pred, dtype=dtype), torch.tensor(target, dtype=dtype))
    assert got.shape == (27,) and got.dtype == torch.float64
    want = [sklearn_metrics.f1_score(target[:, j] >= 0.5, pred[:, j] >= 0.5, zero_division=np.nan) for j in range(27)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, equal_nan=True)
    assert np.isnan(want[5]) and want[6] == 0
    # another threshold, and a single column as a vector
    want3 = sklearn_metrics.f1_score(target[:, 0] >= 0.3, pred[:, 0] >= 0.3)
    assert float(f1_per_au(torch.tensor(pred[:, 0]), torch.tensor(target[:, 0]), threshold=0.3)) == pytest.approx(want3, rel=1e-12)

def test_f1_threshold_is_inclusive():
    assert float(f1_per_au(torch.tensor([0.5, 0.49]), torch.tensor([1.0, 0.0]))) == 1.0

@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_pearson_matches_scipy(dtype):
    r = rng(2)
    a = r.random((60, 5)); b = 0.5 * a + 0.4 * r.standard_normal((60, 5)); b[:, 3] = -a[:, 3] + 2
    a, b = torch.tensor(a, dtype=dtype).double().numpy(), torch.tensor(b, dtype=dtype).double().numpy()  # the same rounded data
    got = pearson_per_au(torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype))
    want = [stats.pearsonr(a[:, j], b[:, j])[0] for j in range(5)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    assert float(got[3]) == pytest.approx(-1.0)
    pooled = float(pearson_per_au(torch.tensor(a).reshape(-1), torch.tensor(b).reshape(-1)))
    assert pooled == pytest.approx(stats.pearsonr(a.ravel(), b.ravel())[0], rel=1e-12)
    assert pearson_per_au(torch.tensor(a[:2, 0]), torch.tensor(b[:2, 0])).abs() == pytest.approx(1.0)   # two points: |r| = 1

def test_pearson_constant_column_is_nan():
    a = torch.rand(10, 2, dtype=torch.float64); b = a.clone(); b[:, 1] = 0.1      # 0.1 is not exact in binary: round-off
    r = pearson_per_au(a, b)
    assert r[0] == pytest.approx(1.0) and torch.isnan(r[1])

# Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges; published ICC(1,1)=.17, ICC(2,1)=.29, ICC(3,1)=.71
SF = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], dtype=float)

def test_icc_shrout_fleiss_table():
    got = {f: float(icc(torch.tensor(SF), f)) for f in ICC_FORMS}
    assert round(got['3,1'], 2) == 0.71 and round(got['2,1'], 2) == 0.29 and round(got['1,1'], 2) == 0.17
    # the same from the mean squares the paper prints for this table (BMS = 11.24, WMS = 6.26, JMS = 32.49, EMS = 1.02)
    BMS, WMS, JMS, EMS, n, k = 11.24, 6.26, 32.49, 1.02, 6, 4
    assert got['3,1'] == pytest.approx((BMS - EMS) / (BMS + (k - 1) * EMS), abs=2e-3)
    assert got['2,1'] == pytest.approx((BMS - EMS) / (BMS + (k - 1) * EMS + k * (JMS - EMS) / n), abs=2e-3)
    assert got['1,1'] == pytest.approx((BMS - WMS) / (BMS + (k - 1) * WMS), abs=2e-3)

def anova_icc(Y, form):
    "ICC of an (n,k) table from the sums of squares, looping in plain Python (independent of the vectorised code)."
    n, k = len(Y), len(Y[0])
    m = sum(map(sum, Y)) / (n * k)
    rows = [sum(r) / k for r in Y]; cols = [sum(Y[i][j] for i in range(n)) / n for j in range(k)]
    ssr = k * sum((x - m) ** 2 for x in rows); ssc = n * sum((x - m) ** 2 for x in cols)
    sst = sum((Y[i][j] - m) ** 2 for i in range(n) for j in range(k))
    msr, msc, mse = ssr / (n - 1), ssc / (k - 1), (sst - ssr - ssc) / ((n - 1) * (k - 1))
    msw = (sst - ssr) / (n * (k - 1))
    if form == '3,1': return (msr - mse) / (msr + (k - 1) * mse)
    if form == '2,1': return (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    return (msr - msw) / (msr + (k - 1) * msw)

@pytest.mark.parametrize('form', ICC_FORMS)
def test_icc_per_item_matches_anova(form):
    r = rng(3)
    A = r.random((40, 5)); B = A + 0.2 + 0.3 * r.standard_normal((40, 5))
    got = icc(torch.stack([torch.tensor(A), torch.tensor(B)], 1), form)
    assert got.shape == (5,)
    want = [anova_icc(np.stack([A[:, j], B[:, j]], 1).tolist(), form) for j in range(5)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9)
    got32 = icc(torch.stack([torch.tensor(A), torch.tensor(B)], 1).float(), form)
    np.testing.assert_allclose(got32.numpy(), want, rtol=1e-5)

def test_icc_offset_and_undefined():
    a = torch.rand(30, dtype=torch.float64)
    assert float(icc(torch.stack([a, a + 1], 1))) == pytest.approx(1.0)            # consistency ignores the offset
    assert float(icc(torch.stack([a, a + 1], 1), '2,1')) < 0.5                      # absolute agreement does not
    assert torch.isnan(icc(torch.full((5, 2), 0.3, dtype=torch.float64)))          # every rating equal: undefined

def test_bad_input():
    with pytest.raises(InputError, match='same shape'): f1_per_au(torch.rand(4, 3), torch.rand(4, 2))
    with pytest.raises(InputError, match='same shape'): pearson_per_au(torch.rand(4), torch.rand(5))
    with pytest.raises(InputError, match=r'\(N,\) or \(N,A\)'): f1_per_au(torch.rand(2, 3, 4), torch.rand(2, 3, 4))
    with pytest.raises(InputError, match='torch.Tensor'): pearson_per_au(np.zeros(3), torch.rand(3))
    with pytest.raises(InputError, match='non-finite'): pearson_per_au(torch.tensor([0., float('nan'), 1.]), torch.rand(3))
    with pytest.raises(InputError, match='`target`.*non-finite'): f1_per_au(torch.rand(3), torch.tensor([0., float('inf'), 1.]))
    with pytest.raises(InputError, match='at least 2 sample'): pearson_per_au(torch.rand(1, 3), torch.rand(1, 3))
    with pytest.raises(InputError, match='at least 1 sample'): f1_per_au(torch.rand(0, 3), torch.rand(0, 3))
    with pytest.raises(InputError, match='at least 2 targets'): icc(torch.rand(1, 2))
    with pytest.raises(InputError, match='at least 2 raters'): icc(torch.rand(5, 1))
    with pytest.raises(InputError, match='non-finite'): icc(torch.tensor([[1., float('nan')], [2., 3.]]))
    with pytest.raises(InputError, match='form'): icc(torch.rand(5, 2), '3,k')
    with pytest.raises(InputError, match='ratings'): icc(torch.rand(5))
