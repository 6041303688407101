"""facebench.codes.pca against scikit-learn's PCA, numpy's SVD and an exactly linear data set.

The exact case: with no head-scale variation a set of the built-in head (linear blendshapes) is neutral = T + S·shape
and offset = E·weights, so a split PCA with n_id = rank(S) and n_exp = rank(E·W) must encode, decode and transfer
expressions with zero error. Its 14 classes' recipes reach 19 of its AU shapes (counted by hand: AU1 2 4 5 6 7 9 10 12
14 15 17 18 20 22 24 27 28, and AU45 for AU43), so rank(E·W) = 19."""
import numpy as np, pytest, torch
from facebench.core import InputError
from facebench.models.builtin import builtin_head
from facebench.codes.data import synthetic_set, expressible_classes
from facebench.codes.pca import PCA, fit_joint_pca, fit_split_pca

sk = pytest.importorskip('sklearn.decomposition')


@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-9), (torch.float32, 2e-4)])
def test_pca_matches_sklearn(dtype, tol):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 12)) @ rng.normal(size=(12, 12)) + rng.normal(size=12)
    ref = sk.PCA(n_components=5, svd_solver='full').fit(X)
    p = PCA.fit(torch.tensor(X, dtype=dtype), 5)
    C = p.components.double().numpy()
    signs = np.sign((C * ref.components_).sum(1))
    assert np.all(np.abs(signs) == 1)
    np.testing.assert_allclose(C * signs[:, None], ref.components_, atol=tol * 10)
    np.testing.assert_allclose(p.explained_variance.double().numpy(), ref.explained_variance_, rtol=tol * 10)
    np.testing.assert_allclose(p.explained_variance_ratio.double().numpy(), ref.explained_variance_ratio_, rtol=tol * 10)
    np.testing.assert_allclose(p.singular_values.double().numpy(), ref.singular_values_, rtol=tol * 10)
    Z = p.encode(torch.tensor(X, dtype=dtype)).double().numpy()
    np.testing.assert_allclose(Z * signs, ref.transform(X), atol=tol * 100)
    np.testing.assert_allclose(p.decode(p.encode(torch.tensor(X, dtype=dtype))).double().numpy(),
                               ref.inverse_transform(ref.transform(X)), atol=tol * 100)
    assert p.components.dtype == dtype


def test_uncentred_pca_matches_numpy_svd():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 7)) + 3.0
    p = PCA.fit(torch.tensor(X), 3, center=False)
    _, s, Vt = np.linalg.svd(X, full_matrices=False)
    assert torch.equal(p.mean, torch.zeros(7, dtype=torch.float64))
    np.testing.assert_allclose(np.abs(p.components.numpy()), np.abs(Vt[:3]), atol=1e-10)
    np.testing.assert_allclose(p.singular_values.numpy(), s[:3], rtol=1e-10)


def test_pca_errors():
    with pytest.raises(InputError, match='n_components'): PCA.fit(torch.randn(5, 3), 5)
    with pytest.raises(InputError, match='non-finite'): PCA.fit(torch.tensor([[1.0, float('nan')], [0, 1], [1, 1]]), 1)
    with pytest.raises(InputError, match='floating'): PCA.fit(torch.ones(4, 3, dtype=torch.long), 1)


N_EXP = 19


@pytest.fixture(scope='module')
def exact():
    "A built-in head set without head-scale variation: exactly linear in identity and expression."
    head = builtin_head(n_vertices=500, n_shape=3, dtype=torch.float64)
    ds = synthetic_set(head, n_identities=12, samples_per_class=2, scale_std=0.0, split=(0.5, 0.0, 0.5),
                       classes=expressible_classes(head), seed=0, dtype=torch.float64)
    assert int((ds.weights.abs().sum(0) > 0).sum()) == N_EXP
    return ds, ds.subset('train'), ds.subset('test')


def test_split_pca_exact_on_linear_data(exact):
    ds, train, test = exact
    c = fit_split_pca(train, 3, N_EXP)
    rec = c.reconstruct(test.vertices)
    assert float((rec - test.vertices).abs().max()) < 1e-8
    a = torch.arange(0, len(test), 7); b = torch.flip(a, [0])
    gt = test.swap_ground_truth(a, b)
    assert float((c.swap(test.vertices[a], test.vertices[b]) - gt).abs().max()) < 1e-8
    # z_exp of a neutral mesh is zero: the expression basis is not centred
    assert float(c.encode(test.vertices[test.expression == 0]).z_exp.abs().max()) < 1e-8


def test_joint_pca_assigns_identity_components(exact):
    ds, train, test = exact
    c = fit_joint_pca(train, 3, N_EXP)
    assert float((c.reconstruct(test.vertices) - test.vertices).abs().max()) < 1e-8   # full rank: exact
    # the components handed to identity are explained by identity, not by class (one-way ANOVA, numpy)
    Z = c.pca.encode(train.vertices.reshape(len(train), -1)).numpy()
    def r2(col, lab):
        lab = lab.numpy(); m = np.array([col[lab == u].mean() for u in lab])
        return ((m - col.mean()) ** 2).sum() / ((col - col.mean()) ** 2).sum()
    for j in c.id_index.tolist():
        assert r2(Z[:, j], train.identity) > 0.9 and r2(Z[:, j], train.expression) < 0.1
    np.testing.assert_allclose(c.r2_id.numpy(), [r2(Z[:, j], train.identity) for j in range(Z.shape[1])], atol=1e-10)


def test_codec_errors(exact):
    ds, train, test = exact
    c = fit_split_pca(train, 3, 5)
    with pytest.raises(InputError, match=f'expected {ds.n_vertices}'): c.encode(torch.zeros(1, 100, 3, dtype=torch.float64))
    v = test.vertices[:2].clone(); v[0, 0, 0] = float('nan')
    with pytest.raises(InputError, match='non-finite'): c.encode(v)
    with pytest.raises(InputError, match='z_exp'): c.decode(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(InputError, match='training identities'): fit_split_pca(train, 6, 5)
    j = fit_joint_pca(train, 3, 5)
    with pytest.raises(InputError, match='z_id'): j.decode(torch.zeros(2, 2), torch.zeros(2, 5))
