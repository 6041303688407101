"""AUFART training: exact resume, atomic checkpoints, CSV log, K-frame windows, temporal terms, metrics against
hand-computed / numpy references, CLI parsing, bad configs."""
import csv, os
import numpy as np, pytest, torch
from facebench.core import InputError
from facebench.aufart.losses import AufartLossConfig
from facebench.aufart.train import (AufartTrainConfig, aufart_step, build, config_from_args, add_aufart_parser, evaluate,
                                    expression_vertex_error, make_datasets, run_aufart_train,
                                    sample_indices, save_checkpoint)

def tiny_cfg(out, **kw):
    base = dict(out=str(out), steps=4, n_train=8, n_val=4, batch_size=2, log_every=1, ckpt_every=2, progress=False)
    return AufartTrainConfig(**{**base, **kw})

def test_exact_resume(tmp_path):
    straight = run_aufart_train(tiny_cfg(tmp_path / 'a', steps=4), log=lambda *a: None)
    run_aufart_train(tiny_cfg(tmp_path / 'b', steps=2), log=lambda *a: None)
    msgs = []
    resumed = run_aufart_train(tiny_cfg(tmp_path / 'b', steps=4), log=msgs.append)
    assert any('resumed' in m and 'step 2' in m for m in msgs)
    A = torch.load(straight.checkpoint, weights_only=False)
    B = torch.load(resumed.checkpoint, weights_only=False)
    assert A['step'] == B['step'] == 4
    for k in A['head']: assert torch.equal(A['head'][k], B['head'][k]), k
    assert [r['loss'] for r in straight.history] == [r['loss'] for r in resumed.history]
    rows = list(csv.DictReader(open(tmp_path / 'b' / 'log.csv')))
    assert [int(r['step']) for r in rows] == [1, 2, 3, 4] and {'loss', 'lr', 'landmark', 'au'} <= set(rows[0])

def test_atomic_checkpoint(tmp_path, monkeypatch):
    p = save_checkpoint(tmp_path / 'last.pt', step=1)
    assert torch.load(p)['step'] == 1 and not (tmp_path / 'last.pt.tmp').exists()
    def boom(obj, f, *a, **k):
        open(f, 'wb').write(b'partial'); raise OSError('disk full')
    monkeypatch.setattr(torch, 'save', boom)
    with pytest.raises(OSError): save_checkpoint(tmp_path / 'last.pt', step=2)
    monkeypatch.undo()
    assert torch.load(p)['step'] == 1            # the previous checkpoint survives a failed write

def test_sample_indices_windows():
    g = torch.Generator().manual_seed(0)
    idx = sample_indices(40, 50, K=3, seq_len=8, generator=g).view(50, 3)
    assert (idx.diff(dim=1) == 1).all()                            # consecutive frames
    assert (idx[:, 0] // 8 == idx[:, 2] // 8).all()                # inside one sequence
    assert int(idx.max()) < 40 and int(idx.min()) >= 0
    with pytest.raises(InputError, match='seq_len >= K'): sample_indices(40, 2, K=9, seq_len=8)

def test_configs_refuse_bad_values(tmp_path):
    with pytest.raises(InputError, match='K=9 frames per sample but sequences have seq_len=8'): AufartTrainConfig(K=9, seq_len=8)
    with pytest.raises(InputError, match='variant'): AufartTrainConfig(variant='x')
    with pytest.raises(InputError, match='frozen_source'): AufartTrainConfig(frozen_source='x')
    with pytest.raises(InputError, match='steps'): AufartTrainConfig(steps=0)
    with pytest.raises(InputError, match='no such file'): build(AufartTrainConfig(model=str(tmp_path / 'none.npz')))

@pytest.mark.parametrize('variant', ['paper', 'code'])
def test_temporal_step_and_variants(tmp_path, variant):
    loss = AufartLossConfig.selfsupervised(temporal_expression=1.0, temporal_au=1.0)
    cfg = tiny_cfg(tmp_path, K=3, seq_len=4, n_train=8, variant=variant, loss=loss)
    model, net = build(cfg)
    train, _ = make_datasets(model, cfg)
    assert len(train) == 8
    idx = sample_indices(len(train), 2, 3, 4, torch.Generator().manual_seed(0))
    so = aufart_step(net, model, train[idx], cfg)
    assert {'temporal_expression', 'temporal_au', 'photo', 'landmark', 'au'} <= set(so.terms)
    so.loss.backward()
    assert all(p.grad is None for p in net.au_net.parameters())
    assert sum(float(p.grad.abs().sum()) for p in net.head.parameters() if p.grad is not None) > 0
    assert so.camera.shape == (6, 3) and so.render.shape == (6, 3, 32, 32)

def test_evaluate_uses_metrics_au():
    import facebench.aufart.train as T, facebench.metrics.au as M
    assert T.f1_per_au is M.f1_per_au and T.pearson_per_au is M.pearson_per_au   # no private copies left
    assert not hasattr(T, 'pearson')

def test_train_data_sequences_for_k1(tmp_path):
    # K = 1 on train_data='sequences' sees exactly the training frames of a K = 4 run (fair "more frames" comparison)
    c1 = tiny_cfg(tmp_path, K=1, seq_len=4, train_data='sequences'); c4 = tiny_cfg(tmp_path, K=4, seq_len=4)
    model, _ = build(c1)
    t1, v1 = make_datasets(model, c1); t4, v4 = make_datasets(model, c4)
    assert len(t1) == len(t4) == 8 and torch.equal(t1.image, t4.image) and torch.equal(v1.image, v4.image)
    tf, _ = make_datasets(model, tiny_cfg(tmp_path, K=1, seq_len=4))           # 'auto' with K = 1: independent frames
    assert not torch.equal(tf.image, t1.image)
    with pytest.raises(InputError, match="train_data='sequences'"): tiny_cfg(tmp_path, K=4, seq_len=4, train_data='frames')
    with pytest.raises(InputError, match='`train_data`'): tiny_cfg(tmp_path, train_data='clips')
    # seq_active_aus: how many AUs move in each training sequence
    active = lambda t: (t.au.view(2, 4, -1).amax(1) > 0).sum(1)
    assert (active(t1) == AufartTrainConfig.seq_active_aus).all()            # the default, 11
    t27, _ = make_datasets(model, tiny_cfg(tmp_path, K=1, seq_len=4, train_data='sequences', seq_active_aus=27))
    assert (active(t27) >= 20).all()
    with pytest.raises(InputError, match='`seq_active_aus`'): tiny_cfg(tmp_path, seq_active_aus=0)

def test_expression_vertex_error(tmp_path):
    cfg = tiny_cfg(tmp_path)
    model, _ = build(cfg)
    assert model.units == 'm' and abs(model.n_vertices - cfg.n_vertices) < 100
    shape = torch.zeros(2, model.n_shape)
    k = model.expression_names.index('AU12')
    e = torch.zeros(2, model.n_expression); e[:, k] = 1.0
    assert expression_vertex_error(model, shape, e, e)['all'] == 0
    # closed form: a linear model moves vertex v by exprdirs[v] * w: mean norm in mm, over all vertices and per region
    n = model.exprdirs[:, :, k].double().norm(dim=-1) * 1000
    res = expression_vertex_error(model, shape, e, torch.zeros_like(e))
    assert res['all'] == pytest.approx(float(n.mean()), rel=1e-5)
    assert set(res) == {'all', *model.regions}
    for r, idx in model.regions.items(): assert res[r] == pytest.approx(float(n[idx].mean()), rel=1e-5, abs=1e-4), r   # float32 meshes: 0.1 µm
    assert res['mouth'] > res['all'] > res['scalp']           # a smile moves the mouth, not the scalp

def test_load_model_for_aufart(tmp_path):
    from facebench.models.load import load_model as load_target_model
    m = load_target_model('builtin', n_vertices=600)
    assert 500 < m.n_vertices < 700 and m.expression_names[:3] == ['AU1', 'AU2', 'AU4']
    with pytest.raises(InputError, match="no such file or folder"): load_target_model('toy')   # the toy head is gone
    with pytest.raises(InputError, match="only to the 'builtin' model"): load_target_model(str(tmp_path / 'x.npz'), n_vertices=600)

def test_cli_parses_to_config(tmp_path):
    import argparse
    ap = argparse.ArgumentParser(); sp = ap.add_subparsers(dest='command')
    add_aufart_parser(sp)
    a = ap.parse_args(['aufart', 'train', '--out', str(tmp_path), '--variant', 'code', '--K', '4', '--seq-len', '8', '--temporal', '0.5',
                       '--loss-preset', 'code', '--steps', '7'])
    c = config_from_args(a)
    assert (c.variant, c.K, c.steps, c.loss.temporal_au, c.loss.photo, c.loss.au_distance) == ('code', 4, 7, 0.5, 0.0, 0.7)
    with pytest.raises(SystemExit): ap.parse_args(['aufart', 'train', '--out', 'x', '--variant', 'nope'])
    c = config_from_args(ap.parse_args(['aufart', 'train', '--out', str(tmp_path), '--train-data', 'sequences', '--seq-active-aus', '11']))
    assert (c.K, c.train_data, c.seq_active_aus) == (1, 'sequences', 11)

def test_pretrain_au_net_and_jitter(tmp_path):
    from facebench.aufart.train import pretrain_au_net
    from facebench.aufart.evaluate import sequence_metrics
    from facebench.aufart.data import synthetic_sequences, SyntheticConfig
    cfg = tiny_cfg(tmp_path)
    model, net = build(cfg)
    train, _ = make_datasets(model, cfg)
    before = {k: v.clone() for k, v in net.au_net.state_dict().items()}
    hist = pretrain_au_net(net.au_net, train, 3, generator=torch.Generator().manual_seed(0))
    assert len(hist) == 3 and all(np.isfinite(hist))
    assert not net.au_net.training and not any(p.requires_grad for p in net.au_net.parameters())
    assert any(not torch.equal(before[k], v) for k, v in net.au_net.state_dict().items())
    seqs = synthetic_sequences(model, 2, 4, SyntheticConfig(image_size=32), 0)
    j = sequence_metrics(net, model, seqs, 4, cfg)['jitter_mm']
    assert j >= 0 and np.isfinite(j)
    with pytest.raises(InputError, match='whole number of sequences'): sequence_metrics(net, model, seqs, 3, cfg)

def test_encoder_frozen_source_runs(tmp_path):
    cfg = tiny_cfg(tmp_path, frozen_source='encoder')
    model, net = build(cfg)
    train, _ = make_datasets(model, cfg)
    so = aufart_step(net, model, train[torch.arange(2)], cfg)
    out = net(train.image[:2])
    # camera = DECA camera of the frozen encoder, refined relative to it by the paper head (zero at the start)
    torch.testing.assert_close(so.camera, out.deca['cam'])
    assert out.camera.abs().max() == 0
    assert torch.isfinite(so.loss)

def test_main_aufart_trains_and_writes(tmp_path, capsys):
    import argparse
    from facebench.aufart.train import main_aufart
    ap = argparse.ArgumentParser(); sp = ap.add_subparsers(dest='command')
    add_aufart_parser(sp)
    a = ap.parse_args(['aufart', 'train', '--out', str(tmp_path), '--steps', '2', '--n-train', '4', '--n-val', '2', '--batch-size', '2',
                       '--log-every', '1', '--quiet'])
    assert main_aufart(a) == 0
    assert (tmp_path / 'last.pt').exists() and (tmp_path / 'metrics.json').exists()
    assert open(tmp_path / 'log.csv').readline().startswith('step,loss,lr,seconds')
    assert 'zero-expression baseline' in capsys.readouterr().out

def test_refine_camera_is_relative():
    from facebench.aufart.train import refine_camera
    cam = torch.tensor([[4.0, 0.01, -0.02], [8.0, 0.0, 0.05]], dtype=torch.float64)
    X = torch.tensor([0.03, -0.04], dtype=torch.float64)           # a model-space point (x, y)
    ndc = lambda c: c[:, :1] * (X + c[:, 1:])                       # DECA's orthographic projection s (X + t)
    d = torch.tensor([[0.0, 0.1, -0.2], [0.0, 0.1, -0.2]], dtype=torch.float64)
    torch.testing.assert_close(ndc(refine_camera(cam, d)) - ndc(cam), d[:, 1:].clone())   # shifts in image units, whatever s
    d = torch.tensor([[0.2, 0.0, 0.0], [-0.3, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(ndc(refine_camera(cam, d)), ndc(cam) * d[:, :1].exp())      # scale change about the centre
    torch.testing.assert_close(refine_camera(cam, torch.zeros_like(cam)), cam)

def test_augment_images_preserves_labels_and_range():
    from facebench.aufart.train import augment_images
    x = torch.zeros(64, 3, 4, 4); x[:, 0], x[:, 1], x[:, 2] = 0.2, 0.4, 0.6
    x[..., :2] *= 0.5                                               # left half darker: shows mirroring
    y = augment_images(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    left_dark = (y[..., :2].mean((1, 2, 3)) < y[..., 2:].mean((1, 2, 3)))
    assert 10 < int(left_dark.sum()) < 54                           # about half mirrored
    # every output channel is a gain in [0.6, 1.4] times some input channel
    base = torch.tensor([0.2, 0.4, 0.6])
    r = y[:, :, 0, 3][:, :, None] / base[None, None]                # (B,3 out,3 in) ratios at an unmirrored/mirrored bright pixel
    r2 = y[:, :, 0, 0][:, :, None] / base[None, None]
    ok = lambda r: ((r >= 0.6 - 1e-6) & (r <= 1.4 + 1e-6)).any(-1)
    assert (ok(r) | ok(r * 2) | ok(r2) | ok(r2 * 2)).all()
    perms = {tuple(torch.argsort(y[i, :, 0, 0] + y[i, :, 0, 3]).tolist()) for i in range(64)}
    assert len(perms) > 1                                           # channels are shuffled

def test_cpu_learning_preset_and_bad_fields():
    from facebench.aufart.data import SyntheticConfig
    c = AufartTrainConfig.cpu_learning(steps=5)
    assert c.net_preset == 'small' and c.image_size == c.synthetic.image_size == 64 and c.steps == 5 and c.pretrain_au_steps > 0
    d = c.to_dict()
    assert AufartTrainConfig(**d).synthetic == c.synthetic           # a checkpoint's config round-trips
    with pytest.raises(InputError, match='synthetic.image_size=32 but image_size=64'):
        AufartTrainConfig(image_size=64, synthetic=SyntheticConfig(image_size=32))
    with pytest.raises(InputError, match='net_preset'): AufartTrainConfig(net_preset='huge')
    with pytest.raises(InputError, match='pretrain_au_target'): AufartTrainConfig(pretrain_au_target='x')
    with pytest.raises(InputError, match=r"synthetic\.yaw"): AufartTrainConfig(**{**d, 'synthetic': {**d['synthetic'], 'yaw': 3}})
    with pytest.raises(InputError, match=r"loss\.phot"): AufartTrainConfig(**{**d, 'loss': {**d['loss'], 'phot': 1.0}})
    assert 'tiny' not in d and AufartTrainConfig().net_preset == 'tiny'         # one setting for the network size

def _mediapipe_model():
    "The small built-in head with a 'mediapipe105' landmark set (random faces / barycentrics, as a FLAME file would give)."
    from facebench.models.builtin import builtin_head_data
    from facebench.models.base import MorphableModel
    d = builtin_head_data(600)
    rng = np.random.default_rng(0)
    front = np.nonzero(d.v_template[d.faces].mean(1)[:, 2] > np.quantile(d.v_template[:, 2], 0.7))[0]
    d.landmark_sets = {'mediapipe105': (rng.choice(front, 105).astype(np.int64), rng.dirichlet(np.ones(3), 105))}
    return MorphableModel(d)

def _deca_pixels(points, cam, S):
    "DECA orthographic projection written out: x_ndc = s (X + t_x), y_ndc = -s (Y + t_y); pixels (ndc + 1) S / 2."
    s, tx, ty = cam[:, :1], cam[:, 1:2], cam[:, 2:3]
    return torch.stack([(s * (points[..., 0] + tx) + 1) * S / 2, (-s * (points[..., 1] + ty) + 1) * S / 2], -1)

def test_mediapipe_scheme_and_emotion_term(tmp_path):
    from facebench.aufart.nets import Aufart, AufartConfig, EmotionNet, EmotionNetConfig
    from facebench.aufart.data import synthetic_batch, SyntheticConfig
    from facebench.aufart.losses import lip_distance_loss, eye_distance_loss, emotion_loss
    model = _mediapipe_model()
    batch = synthetic_batch(model, 3, SyntheticConfig(image_size=32), 0)
    gt = batch.landmark_sets['mediapipe105']
    assert gt.shape == (3, 105, 2)
    from facebench.aufart.data import SyntheticBatch
    two = SyntheticBatch.cat([batch[0], batch[1:3]]).to(dtype=torch.float64)
    assert two.landmark_sets['mediapipe105'].dtype == torch.float64 and torch.equal(two.landmark_sets['mediapipe105'].float(), gt)
    out = model(shape=batch.params.shape, expression=batch.params.expression, global_pose=batch.params.global_pose, jaw_pose=batch.params.jaw_pose)
    torch.testing.assert_close(gt, _deca_pixels(out.landmark_sets['mediapipe105'], batch.camera, 32))
    torch.manual_seed(0)
    net = Aufart(AufartConfig.for_model(model, 'paper', preset='tiny'))
    cfg = tiny_cfg(tmp_path)
    so = aufart_step(net, model, batch, cfg)
    # a fresh head predicts psi = 0, theta = 0 and the frozen camera: the reference mesh is the neutral expression
    n = model(shape=batch.params.shape, global_pose=batch.params.global_pose, jaw_pose=torch.zeros(3, 3))
    pred = _deca_pixels(n.landmark_sets['mediapipe105'], batch.camera, 32)
    assert float(so.terms['lip'].detach()) == pytest.approx(cfg.loss.lip * float(lip_distance_loss(pred, gt, 32)), rel=1e-4)
    assert float(so.terms['eye'].detach()) == pytest.approx(cfg.loss.eye * float(eye_distance_loss(pred, gt, 32)), rel=1e-4, abs=1e-9)
    so68 = aufart_step(net, model, batch, tiny_cfg(tmp_path, loss=AufartLossConfig.selfsupervised(landmark_scheme='ibug68')))
    assert float(so68.terms['lip'].detach()) == pytest.approx(cfg.loss.lip * float(lip_distance_loss(so68.landmarks.detach(), batch.landmarks, 32)), rel=1e-4)
    assert 'emotion' not in so.terms                              # no emotion network: the term is off
    emo = EmotionNet(EmotionNetConfig.tiny(32))
    net.attach_emotion_net(emo)
    so = aufart_step(net, model, batch, cfg)
    with torch.no_grad(): want = 0.9 * emotion_loss(emo(so.render), emo(batch.image))
    assert float(so.terms['emotion'].detach()) == pytest.approx(float(want), rel=1e-5)
    # the input's features computed once for the data set (indexed with it) give the same term
    from facebench.aufart.train import with_emotion_features
    fb = with_emotion_features(net, batch)
    with torch.no_grad(): torch.testing.assert_close(fb[1:3].emotion_input, emo(batch.image[1:3]))
    assert float(aufart_step(net, model, fb, cfg).terms['emotion'].detach()) == pytest.approx(float(want), rel=1e-5)
    net.train(); assert not emo.training and not any(p.requires_grad for p in emo.parameters())
    # the built-in head has no MediaPipe set: asking for it is an error, 'auto' falls back to iBUG-68
    m68, net68 = build(cfg)
    b68 = make_datasets(m68, cfg)[0][torch.arange(2)]
    with pytest.raises(InputError, match="needs a model with a 'mediapipe105' landmark set"):
        aufart_step(net68, m68, b68, tiny_cfg(tmp_path, loss=AufartLossConfig.selfsupervised(landmark_scheme='mediapipe105')))
    assert 'lip' in aufart_step(net68, m68, b68, cfg).terms

def test_emotion_checkpoint_note(tmp_path):
    msgs = []
    run_aufart_train(tiny_cfg(tmp_path, steps=1), log=msgs.append)
    assert any('emotion loss (weight 0.9) is off' in m for m in msgs)

def test_cli_cpu_learning_preset(tmp_path):
    import argparse
    ap = argparse.ArgumentParser(); sp = ap.add_subparsers(dest='command')
    add_aufart_parser(sp)
    c = config_from_args(ap.parse_args(['aufart', 'train', '--out', str(tmp_path), '--cpu-learning', '--variant', 'code', '--seed', '3']))
    ref = AufartTrainConfig.cpu_learning()
    assert (c.net_preset, c.image_size, c.n_train, c.pretrain_au_steps, c.variant, c.seed) == ('small', 64, ref.n_train, ref.pretrain_au_steps, 'code', 3)
    assert c.synthetic == ref.synthetic
    c4 = config_from_args(ap.parse_args(['aufart', 'train', '--out', str(tmp_path), '--cpu-learning', '--K', '4', '--seq-len', '8']))
    assert c4.K == 4 and c4.batch_size * 4 == ref.batch_size
    assert AufartTrainConfig.cpu_learning(K=4).batch_size * 4 == ref.batch_size         # the same frames per step, in the preset
    # the options given on the command line are laid over the preset, not ignored
    c = config_from_args(ap.parse_args(['aufart', 'train', '--out', str(tmp_path), '--cpu-learning', '--steps', '5']))
    assert c.steps == 5 and (c.n_train, c.pretrain_au_steps) == (ref.n_train, ref.pretrain_au_steps)
    c = config_from_args(ap.parse_args(['aufart', 'train', '--out', str(tmp_path), '--cpu-learning', '--image-size', '32', '--n-train', '16',
                                        '--batch-size', '3', '--K', '2', '--seq-len', '4']))
    assert (c.image_size, c.synthetic.image_size, c.n_train, c.batch_size, c.net_preset) == (32, 32, 16, 3, 'small')
    # --full: the 'full' network preset at 224 px unless a size is given
    c = config_from_args(ap.parse_args(['aufart', 'train', '--out', str(tmp_path), '--full']))
    assert (c.net_preset, c.image_size) == ('full', 224)
    c = config_from_args(ap.parse_args(['aufart', 'train', '--out', str(tmp_path), '--full', '--image-size', '112']))
    assert (c.net_preset, c.image_size) == ('full', 112)
    assert config_from_args(ap.parse_args(['aufart', 'train', '--out', str(tmp_path)])) == AufartTrainConfig(out=str(tmp_path))
    with pytest.raises(InputError, match='--full and --cpu-learning'):
        config_from_args(ap.parse_args(['aufart', 'train', '--out', str(tmp_path), '--full', '--cpu-learning']))
