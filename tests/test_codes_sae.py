"""facebench.codes.sae: training lowers the loss, checkpoints resume exactly, gradient reversal, errors.

The resume test kills a run (an exception from the step callback) after a checkpoint and compares the resumed run's
per-step losses and final weights with an uninterrupted run of the same seed."""
import numpy as np, pytest, torch
from facebench.core import InputError
from facebench.models.builtin import builtin_head
from facebench.codes.data import synthetic_set, expressible_classes
from facebench.codes.sae import SAEConfig, SupervisedAE, grad_reverse, load_sae, reversal_schedule, sae_loss, train_sae


@pytest.fixture(scope='module')
def data():
    head = builtin_head(n_vertices=500, n_shape=4, dtype=torch.float64)
    ds = synthetic_set(head, n_identities=8, samples_per_class=2, split=(0.75, 0.0, 0.25), classes=expressible_classes(head), seed=0)
    return ds.subset('train'), ds.subset('test')


def tiny(**kw):
    return SAEConfig.cpu(**{**dict(n_id=4, n_exp=8, hidden=(48,), adv_hidden=16, steps=120, log_every=40, checkpoint_every=40), **kw})


def test_training_lowers_loss_fixed_seed(data):
    train, test = data
    r = train_sae(train, tiny(), progress=False)
    h = np.array(r.history['rec']) + np.array(r.history['id']) + np.array(r.history['exp'])   # the autoencoder's objective
    assert h[-20:].mean() < 0.6 * h[:20].mean()
    assert np.mean(r.history['rec'][-20:]) < 0.6 * np.mean(r.history['rec'][:20])
    # the reconstruction of unseen identities beats the mean training mesh
    rec = (r.codec.reconstruct(test.vertices) - test.vertices).norm(dim=2).mean()
    base = (train.vertices.mean(0) - test.vertices).norm(dim=2).mean()
    assert float(rec) < float(base)
    r2 = train_sae(train, tiny(), progress=False)                 # same seed, same run
    assert r2.history['total'] == r.history['total']


def test_resume_is_exact(data, tmp_path):
    train, _ = data
    cfg = tiny(steps=30, checkpoint_every=10, log_every=10)
    full = train_sae(train, cfg, checkpoint=tmp_path / 'full.pt', progress=False)

    class Killed(Exception): pass
    def kill_at_20(step, terms):
        if step == 20: raise Killed
    ck = tmp_path / 'run.pt'
    with pytest.raises(Killed): train_sae(train, cfg, checkpoint=ck, callback=kill_at_20, progress=False)
    assert torch.load(ck, weights_only=False)['step'] == 20
    assert not list(tmp_path.glob('*.tmp'))                        # atomic writes leave no temporary file
    res = train_sae(train, cfg, checkpoint=ck, progress=False)
    assert res.resumed_from == 20 and res.step == 30
    assert res.history['total'] == full.history['total']           # bit-identical per-step losses
    for (k, a), b in zip(full.codec.net.state_dict().items(), res.codec.net.state_dict().values()):
        assert torch.equal(a, b), k
    # a finished run resumed with more steps continues; another architecture is refused
    more = train_sae(train, tiny(steps=35, checkpoint_every=10, log_every=10), checkpoint=ck, progress=False)
    assert more.resumed_from == 30 and len(more.history['total']) == 35
    with pytest.raises(InputError, match='another config'):
        train_sae(train, tiny(steps=40, n_exp=6), checkpoint=ck, progress=False)


def test_load_sae_roundtrip(data, tmp_path):
    train, test = data
    r = train_sae(train, tiny(steps=20), checkpoint=tmp_path / 'a.pt', progress=False)
    c = load_sae(tmp_path / 'a.pt')
    assert torch.equal(c.encode(test.vertices).z_id, r.codec.encode(test.vertices).z_id)
    assert torch.equal(c.reconstruct(test.vertices), r.codec.reconstruct(test.vertices))
    with pytest.raises(FileNotFoundError): load_sae(tmp_path / 'none.pt')
    torch.save({'x': 1}, tmp_path / 'other.pt')
    with pytest.raises(InputError, match='not a facebench SAE'): load_sae(tmp_path / 'other.pt')


def test_gradient_reversal_and_loss_terms():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 3, dtype=torch.float64)
    (grad_reverse(x, 0.3) * w).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * w)
    cfg = tiny(adversarial=0.5)
    torch.manual_seed(0)
    net = SupervisedAE(12, 3, cfg).double()
    xb = torch.randn(6, 12, dtype=torch.float64)
    with torch.no_grad(): out = net(xb)
    y_id, y_exp = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([0, 5, 19, 3, 3, 1])
    t = sae_loss(out, xb, y_id, y_exp, cfg)
    # independent re-computation of the terms
    ce = lambda lg, y: float(-torch.log_softmax(lg, 1)[torch.arange(len(y)), y].mean())
    assert abs(float(t['rec']) - float((out.recon - xb).abs().mean())) < 1e-12
    assert abs(float(t['id']) - ce(out.id_logits, y_id)) < 1e-12 and abs(float(t['adv_exp']) - ce(out.adv_exp_logits, y_exp)) < 1e-12
    assert abs(float(t['total']) - (float(t['rec']) + float(t['id']) + float(t['exp']) + float(t['adv_id']) + float(t['adv_exp']))) < 1e-12
    # the adversary's head descends its loss while the encoder receives the reversed gradient
    net.zero_grad(); sae_loss(net(xb, 0.7), xb, y_id, y_exp, tiny(w_rec=0, w_id=0, w_exp=0))['total'].backward()
    g_enc = net.enc_exp[-1].weight.grad.clone()
    net.zero_grad()
    z_exp = net.enc_exp(xb)
    torch.nn.functional.cross_entropy(net.adv_id(z_exp), y_id).backward()
    torch.testing.assert_close(g_enc, -0.7 * net.enc_exp[-1].weight.grad)
    assert reversal_schedule(0, 100, 0.5) == 0.0 and abs(reversal_schedule(100, 100, 0.5) - 0.5 * (2 / (1 + np.exp(-10)) - 1)) < 1e-12


def test_paper_preset_and_float64(data):
    train, test = data
    gpu = SAEConfig.gpu()
    assert (gpu.n_id, gpu.n_exp, gpu.hidden, gpu.lr, gpu.batch_size) == (100, 30, (1024, 512), 1e-4, 128)
    r = train_sae(train, tiny(steps=5, adversarial=0.0), dtype=torch.float64, progress=False)
    assert r.codec.encode(test.vertices).z_exp.dtype == torch.float64


def test_errors(data):
    train, test = data
    r = train_sae(train, tiny(steps=2), progress=False)
    V = train.n_vertices
    with pytest.raises(InputError, match=f'expected {V}'): r.codec.encode(torch.zeros(2, V - 6, 3))
    v = test.vertices[:1].clone(); v[0, 3, 1] = float('inf')
    with pytest.raises(InputError, match='non-finite'): r.codec.encode(v)
    with pytest.raises(InputError, match='SAEConfig'): train_sae(train, {'steps': 3}, progress=False)
    bad = train.subset(torch.arange(4)); bad.expression = torch.tensor([0, 1, 25, 3])
    with pytest.raises(InputError, match='expression class 25'): train_sae(bad, tiny(steps=1), progress=False)
    nan = train.subset(torch.arange(4)); nan.vertices = nan.vertices.clone(); nan.vertices[2, 0, 0] = float('nan')
    with pytest.raises(InputError, match='non-finite'): train_sae(nan, tiny(steps=1), progress=False)
