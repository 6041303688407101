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

# ------------------------------------------------------------------ EMOCA emotion loss, MediaPipe-105 groups
def test_emotion_loss_is_feature_mse():
    from facebench.aufart.losses import emotion_loss
    a = torch.zeros(2, 4, requires_grad=True); b = torch.tensor([[1., 2., 0., 0.], [0., 0., 0., 3.]], requires_grad=True)
    l = emotion_loss(a, b)
    assert float(l.detach()) == pytest.approx((1 + 4 + 9) / 8)
    l.backward()
    assert b.grad is None and a.grad is not None                 # the input's features are targets
    assert AufartLossConfig().emotion == 0.9 == AufartLossConfig.selfsupervised().emotion
    with pytest.raises(InputError, match='feat_input'): emotion_loss(torch.zeros(2, 4), torch.zeros(3, 4))

def test_mediapipe105_weights_follow_the_public_rule():
    from facebench.aufart.losses import MEDIAPIPE105_AU_GROUPS, MEDIAPIPE105_LIP_OUT
    g = torch.Generator().manual_seed(3)
    au = (torch.rand(16, 41, generator=g) > 0.8).float() * torch.rand(16, 41, generator=g)
    w = au_landmark_weights(au, 105, threshold=0.5, gain=5.0)
    # reference: the public code's per-sample loop (groups in its order, later ones overwrite; outer lip / 5)
    code_order = ['brow', 'brow_inner', 'brow_outer', 'eye_up', 'eye_low', 'eye_all', 'nose', 'lip_up', 'lip_end', 'mouth']
    ref = torch.ones(16, 105)
    for i in range(16):
        for name in code_order:
            lm, aus = MEDIAPIPE105_AU_GROUPS[name]
            if any(float(au[i, a]) >= 0.5 for a in aus): ref[i, list(lm)] = 5.0 / len(lm)
    ref[:, list(MEDIAPIPE105_LIP_OUT)] /= 5
    assert list(MEDIAPIPE105_AU_GROUPS) == code_order
    torch.testing.assert_close(w, ref)
    assert len(MEDIAPIPE105_AU_GROUPS['mouth'][0]) == 40 and MEDIAPIPE105_AU_GROUPS['nose'][0] == tuple(range(52, 65))
    with pytest.raises(InputError, match='MediaPipe-105'): au_landmark_weights(au, 98)

def test_mediapipe105_lip_distance():
    from facebench.aufart.losses import MEDIAPIPE105_LIP_PAIRS
    assert len(MEDIAPIPE105_LIP_PAIRS) == 20 and all(65 <= b <= 104 or b == 61 for p in MEDIAPIPE105_LIP_PAIRS for b in p)
    t = torch.zeros(1, 105, 2)
    for k, (a, b) in enumerate(MEDIAPIPE105_LIP_PAIRS):   # partners 3 px apart, each pair at its own x
        if a != 61: t[0, a] = torch.tensor([float(k), 0.0])
        t[0, b] = torch.tensor([float(k), 3.0])
    t[0, 61] = torch.tensor([0.0, 3.0]); t[0, 65] = torch.tensor([0.0, 0.0])
    p = t.clone(); p[0, 66, 1] -= 2.0                     # move one point of one pair (66, 67) 2 px further away
    assert float(lip_distance_loss(p, t, 10)) == pytest.approx(2 / 20 / 10, abs=1e-6)
    assert float(eye_distance_loss(p, t, 10)) == 0
    with pytest.raises(InputError, match='iBUG-68 or MediaPipe-105'): lip_distance_loss(torch.zeros(1, 70, 2), torch.zeros(1, 70, 2), 10)

def test_landmark_scheme_config():
    assert AufartLossConfig().landmark_scheme == 'auto'
    with pytest.raises(InputError, match='landmark_scheme'): AufartLossConfig(landmark_scheme='dlib')
