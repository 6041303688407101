"""N2FNet losses against hand computations (numpy), analytic cosine distances, and a camera recovered by gradient
descent through the differentiable renderer."""
import numpy as np
import pytest
import torch
from facebench.core import InputError
from facebench.models.base import Params
from facebench.render.cameras import PerspectiveCamera
from facebench.models.builtin import builtin_head
from facebench.synth import SyntheticFaces, SynthConfig
from facebench.n2f.model import ParamLayout
from facebench.n2f.losses import (ParamLossWeights, RenderLossWeights, RenderedFace, cosine_distance, omega_target, param_loss,
                                  render_face, render_loss, face_indicator)

@pytest.fixture(scope='module')
def head():
    return builtin_head(n_vertices=500, n_shape=8, n_expression=6)

@pytest.fixture(scope='module')
def batch(head):
    return SyntheticFaces(head, SynthConfig(image_size=40, batch_size=2), seed=3).batch(0)

def test_paper_weights():
    w, r = ParamLossWeights(), RenderLossWeights()
    assert (w.shape, w.jaw, w.expression, w.eyelids) == (10, 10, 100, 10)
    assert (r.normal, r.mask, r.landmarks) == (1, 10, 100) and RenderLossWeights.real().landmarks == 10000

def test_cosine_distance_analytic():
    x = torch.tensor([[1., 0, 0], [0, 2, 0], [3, 0, 0], [1, 1, 0]])
    y = torch.tensor([[0., 5, 0], [0, -1, 0], [1, 0, 0], [1, 0, 0]])
    torch.testing.assert_close(cosine_distance(x, y, dim=1), torch.tensor([1., 2., 0., 1 - 2 ** -0.5]))
    assert cosine_distance(torch.zeros(1, 3), y[:1], dim=1).item() == 1.0

def test_param_loss_is_the_weighted_mse():
    lay = ParamLayout(5, 6, 4, 2)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, lay.dim, generator=g), torch.randn(3, lay.dim, generator=g)
    an, bn = a.numpy(), b.numpy()
    edges = np.cumsum([0, 5, 6, 4, 2])
    want = sum(w * np.mean((an[:, s:e] - bn[:, s:e]) ** 2) for w, s, e in zip((10, 10, 100, 10), edges[:-1], edges[1:]))
    L = param_loss(a, b, lay)
    assert abs(L.total.item() - want) < 1e-4 * want and set(L.parts) == {'param_shape', 'param_jaw', 'param_expression', 'param_eyelids'}
    # a model without jaw and eyelids (ICT-like): only two groups
    lay2 = ParamLayout(5, 0, 4, 0)
    L2 = param_loss(a[:, :9], b[:, :9], lay2)
    assert abs(L2.total.item() - (10 * np.mean((an[:, :5] - bn[:, :5]) ** 2) + 100 * np.mean((an[:, 5:9] - bn[:, 5:9]) ** 2))) < 1e-4
    with pytest.raises(InputError, match='omega'): param_loss(a[:, :5], b, lay)

def test_omega_target(head, batch):
    lay = ParamLayout.from_model(head)
    om = omega_target(batch.params, lay, batch.jaw6d)
    om2 = omega_target(batch.params, lay)          # jaw 6D recomputed from the axis-angle
    torch.testing.assert_close(om, om2, atol=1e-6, rtol=0)
    assert torch.equal(om[:, :8], batch.params.shape) and torch.equal(om[:, -2:], batch.params.eyelids)

def test_landmark_and_mask_terms_by_hand():
    B, H, W, L = 1, 20, 40, 68
    n = torch.zeros(B, 3, H, W); n[:, 2] = -1
    m = torch.zeros(B, 1, H, W); m[..., 5:15, 10:30] = 1
    lmk = torch.rand(B, L, 2) * 20
    pred = RenderedFace(normal=n.clone(), face_mask=m * 0.5, landmarks=lmk + torch.tensor([2.0, 1.0]), mask=m)
    r = render_loss(pred, n, m, lmk)
    want_l = (2 * 2 / W) ** 2 + (2 * 1 / H) ** 2
    want_s = (0.5 ** 2) * m.mean().item()
    assert abs(r.parts['render_lmk'] - want_l) < 1e-6 and abs(r.parts['render_mask'] - want_s) < 1e-6 and r.parts['render_normal'] < 1e-7
    torch.testing.assert_close(r.total, torch.tensor(10 * want_s + 100 * want_l))
    # normals turned 90 degrees on the face: d_cos = 1
    p2 = RenderedFace(torch.roll(n, 1, 1), m, lmk, m)
    assert abs(render_loss(p2, n, m, lmk).parts['render_normal'] - 1) < 1e-6
    with pytest.raises(InputError, match='face_mask'): render_loss(pred, n, m[..., :10], lmk)

def test_loss_vanishes_at_the_ground_truth(head, batch):
    r = render_loss(render_face(head, batch.params, batch.camera), batch.normal, batch.face_mask, batch.landmarks)
    assert r.parts['render_normal'] < 1e-4 and r.parts['render_lmk'] < 1e-10 and r.parts['render_mask'] < 0.01
    ind = face_indicator(head)
    assert set(ind.unique().tolist()) == {0.0, 1.0}
    with pytest.raises(InputError, match='face region'): face_indicator(head, ('face', 'beard'))

def test_camera_recovered_through_the_renderer(head, batch):
    "Gradient descent on the translation from a shifted start recovers the ground truth (all three terms)."
    cam = batch.camera
    t = (cam.t + torch.tensor([0.01, -0.008, 0.05])).clone().requires_grad_(True)
    opt = torch.optim.Adam([t], lr=2e-3)
    for _ in range(40):
        c = PerspectiveCamera(cam.R, t, cam.focal, cam.principal, cam.image_size)
        p = Params(**{**dict(batch.params.items()), 'camera_translation': t})
        L = render_loss(render_face(head, p, c), batch.normal, batch.face_mask, batch.landmarks)
        opt.zero_grad(); L.total.backward(); opt.step()
    err0 = torch.tensor([0.01, -0.008, 0.05]).norm()
    err = (t.detach() - cam.t).norm(dim=1)
    assert (err < 0.25 * err0).all(), err
