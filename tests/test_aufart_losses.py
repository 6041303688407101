"""AUFART losses on analytic cases: known displacements, closed-form distances, hand-computed BCE/MSE, gradients."""
import math
import pytest, torch
from facebench.core import InputError
from facebench.aufart.nets import AU_NAMES
from facebench.aufart.losses import (AU_LANDMARK_PAIRS, EYE_PAIRS, LANDMARK_AU_GROUPS, LIP_PAIRS, AufartLossConfig,
                                     au_consistency_loss, au_distance_loss, au_gated_landmark_loss, au_landmark_weights,
                                     au_trajectory_loss, expression_smoothness, eye_distance_loss, landmark_loss,
                                     lip_distance_loss, photometric_loss, regularizer, total_loss)

def test_config_defaults_are_the_public_code():
    c = AufartLossConfig()
    assert (c.photo, c.landmark, c.au, c.au_landmark, c.au_distance, c.lip, c.eye, c.reg_expression, c.reg_jaw) == \
        (0, 0, 1.0, 0.01, 0.7, 0.5, 0.06, 1e-4, 1e-3)
    s = AufartLossConfig.selfsupervised()
    assert (s.photo, s.landmark, s.au_landmark, s.au_distance, s.lip, s.reg_jaw) == (0.2, 1.0, 0.5, 0.5, 1.0, 0.8)
    with pytest.raises(InputError, match='au_kind'): AufartLossConfig(au_kind='kl')
    with pytest.raises(InputError, match='>= 0'): AufartLossConfig(lip=-1.0)
    tot, w = total_loss(c, {'au': torch.tensor(2.0), 'lip': torch.tensor(4.0)})
    assert float(tot) == pytest.approx(2.0 + 0.5 * 4.0) and float(w['lip']) == 2.0
    with pytest.raises(InputError, match='unknown loss term'): total_loss(c, {'emoca': torch.tensor(1.0)})

def test_photometric_masked_l1():
    t = torch.zeros(1, 3, 4, 4); p = t.clone(); p[..., :2, :] = 0.5; p[..., 2:, :] = 9.0
    m = torch.zeros(1, 1, 4, 4); m[..., :2, :] = 1          # errors outside the mask do not count
    assert float(photometric_loss(p, t, m)) == pytest.approx(0.5)
    m2 = m * 0.5                                            # soft masks are weights: same mean
    assert float(photometric_loss(p, t, m2)) == pytest.approx(0.5)
    with pytest.raises(InputError, match='mask'): photometric_loss(p, t, torch.ones(1, 1, 3, 4))

def test_landmark_loss_weights():
    t = torch.zeros(2, 3, 2); p = t.clone(); p[0, 0] = torch.tensor([3.0, -4.0])
    # L1 over coordinates: |3| + |-4| = 7 on one of 6 landmarks, 12 coordinates, image 100
    assert float(landmark_loss(p, t, 100)) == pytest.approx(7 / 12 / 100)
    w = torch.zeros(2, 3); w[0, 0] = 1
    assert float(landmark_loss(p, t, 100, w)) == pytest.approx(7 / 2 / 100)
    with pytest.raises(InputError, match='weights'): landmark_loss(p, t, 100, torch.ones(2, 4))

def test_au_consistency():
    a = torch.tensor([[0.2, 0.9]]); b = torch.tensor([[0.5, 0.5]])
    assert float(au_consistency_loss(a, b)) == pytest.approx(((0.3 ** 2) + (0.4 ** 2)) / 2)
    assert float(au_consistency_loss(a, b, 'l1')) == pytest.approx(0.35)
    bce = -(0.2 * math.log(0.5) + 0.8 * math.log(0.5) + 0.9 * math.log(0.5) + 0.1 * math.log(0.5)) / 2
    assert float(au_consistency_loss(a, b, 'bce')) == pytest.approx(bce)
    b.requires_grad_(); au_consistency_loss(a.requires_grad_(), b).backward()
    assert a.grad is None and b.grad is not None                       # the input's AUs are targets
    with pytest.raises(InputError, match='au_render'): au_consistency_loss(torch.zeros(2, 27), torch.zeros(2, 41))

def test_au_gating():
    au = torch.zeros(3, 27)
    au[1, AU_NAMES.index('AU1')] = 0.6                                  # brow group
    au[2, AU_NAMES.index('AU5')] = 0.49                                 # below threshold: nothing
    w = au_landmark_weights(au, gain=5.0)
    assert (w[0] == 1).all() and (w[2] == 1).all()
    assert (w[1, 17:27] == 6).all() and float(w[1].sum()) == 68 + 5 * 10
    sub = torch.zeros(1, 41); sub[0, 35] = 0.9                          # AUL10: mouth group (sub-AU)
    assert (au_landmark_weights(sub)[0, 48:68] == 6).all()
    groups = [set(v[0]) for v in LANDMARK_AU_GROUPS.values()]
    assert sum(len(g) for g in groups) == len(set().union(*groups))      # disjoint groups
    # gated loss: an error on a brow landmark counts (1+gain) times when AU1 is on
    t = torch.zeros(1, 68, 2); p = t.clone(); p[0, 20, 0] = 1.0
    on = torch.zeros(1, 27); on[0, 0] = 1.0
    l_on, l_off = au_gated_landmark_loss(p, t, on, 1), au_gated_landmark_loss(p, t, on * 0, 1)
    assert float(l_on) == pytest.approx(6 / (2 * (68 + 50))) and float(l_off) == pytest.approx(1 / (2 * 68))
    with pytest.raises(InputError, match='27 or 41'): au_landmark_weights(torch.zeros(1, 12))

def test_distance_losses_closed_form():
    base = torch.rand(2, 68, 2, generator=torch.Generator().manual_seed(0)) * 50
    # a rigid motion (rotation + translation) keeps every distance: zero loss
    c, s = math.cos(0.3), math.sin(0.3)
    R = torch.tensor([[c, -s], [s, c]])
    moved = base @ R.T + torch.tensor([5.0, -3.0])
    for f in (au_distance_loss, eye_distance_loss, lip_distance_loss):
        assert float(f(moved, base, 64)) < 1e-5
    # scaling about any point by k changes every distance d to k d: loss = (k - 1) mean(d) / S
    k = 1.5
    for f, pairs in ((eye_distance_loss, EYE_PAIRS), (lip_distance_loss, LIP_PAIRS),
                     (au_distance_loss, [p for v in AU_LANDMARK_PAIRS.values() for p in v])):
        a, b = zip(*pairs)
        d = (base[:, list(a)] - base[:, list(b)]).norm(dim=-1)
        assert float(f(base * k, base, 64)) == pytest.approx(float((k - 1) * d.mean() / 64), rel=1e-5)

def test_regularizer_and_temporal():
    x = torch.tensor([[1.0, 2.0], [0.0, 3.0]])
    assert float(regularizer(x)) == pytest.approx(((1 + 4) + 9) / 2 / 2)
    assert float(regularizer(torch.zeros(3, 0))) == 0
    # a linear ramp psi_t = t * v: every step changes by v -> smoothness |v|^2
    v = torch.tensor([0.3, -0.4])
    seq = torch.arange(5.0)[None, :, None] * v
    assert float(expression_smoothness(seq)) == pytest.approx(0.25)
    assert float(expression_smoothness(torch.ones(2, 4, 3))) == 0
    a = torch.rand(2, 5, 27)
    assert float(au_trajectory_loss(a, a + 0.3)) < 1e-12              # a constant offset keeps the trajectory
    b = a.clone(); b[:, -1] += 0.2                                      # one step differs by 0.2 on every AU
    assert float(au_trajectory_loss(a, b)) == pytest.approx(0.04 / 4, rel=1e-5)
    with pytest.raises(InputError, match='K >= 2'): expression_smoothness(torch.zeros(2, 1, 3))
    with pytest.raises(InputError, match='differ'): au_trajectory_loss(torch.zeros(2, 3, 27), torch.zeros(2, 4, 27))
