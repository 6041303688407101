"""N2FNet training: exact resume after an interruption, stage freezing, parameter groups, checkpoint checks, config
files, CLI, and two gloo processes drawing their own streams."""
import os
os.environ['HF_HUB_OFFLINE'] = '1'
os.environ['TRANSFORMERS_OFFLINE'] = '1'
import json
from pathlib import Path
import pytest
import torch
from facebench.core import InputError
from facebench.n2f.model import N2FNet, N2FConfig
from facebench.n2f.train import (TrainConfig, config_from_dict, config_to_dict, load_train_config, save_train_config, run_n2f_train,
                                 read_log, param_groups, set_trainable, lr_factor, save_checkpoint, load_checkpoint, load_model,
                                 add_n2f_parser, main_n2f)

def tiny(out, **kw):
    d = dict(model='builtin', n_vertices=500, n_shape=8, n_expression=6, batch_size=2, steps=6, warmup_steps=2, val_every=3, val_batches=1, ckpt_every=2, progress=False,
             device='cpu', out_dir=str(out), synth={'image_size': 32}, net={'backbone': 'vit_tiny', 'image_size': 32})
    d.update(kw)
    return config_from_dict(d)

def test_exact_resume_after_interruption(tmp_path):
    full = run_n2f_train(tiny(tmp_path / 'full'))
    part = run_n2f_train(tiny(tmp_path / 'cut', stop_after=3))          # "killed" after step 3 (last checkpoint at step 2)
    assert part.step == 3
    # simulate a kill between checkpoints: roll last.pt back to the step-2 state by re-running from scratch to 2
    rest = run_n2f_train(tiny(tmp_path / 'cut'))
    assert rest.step == 6
    a, b = read_log(full.log_path), read_log(rest.log_path)
    assert [r['step'] for r in b] == [1, 2, 3, 4, 5, 6]
    assert [r['loss'] for r in a] == [r['loss'] for r in b]              # bit-identical losses
    assert a[-1]['val_total'] == b[-1]['val_total']
    wa, wb = torch.load(full.last_path, weights_only=False)['net'], torch.load(rest.last_path, weights_only=False)['net']
    assert all(torch.equal(wa[k], wb[k]) for k in wa)

def test_kill_between_checkpoints_replays_the_lost_steps(tmp_path):
    full = run_n2f_train(tiny(tmp_path / 'full', steps=4, ckpt_every=2, val_every=4))
    run_n2f_train(tiny(tmp_path / 'cut', steps=4, ckpt_every=2, val_every=4, stop_after=2))
    # steps 3 was done and logged, then the process died before a checkpoint: the log has a stale row beyond last.pt
    log = tmp_path / 'cut' / 'log.csv'
    log.write_text(log.read_text() + '3,999.0,1.0\n')
    rest = run_n2f_train(tiny(tmp_path / 'cut', steps=4, ckpt_every=2, val_every=4))
    assert [r['loss'] for r in read_log(full.log_path)] == [r['loss'] for r in read_log(rest.log_path)]

def test_stage2_trains_only_the_camera_and_joint_trains_all(tmp_path):
    s1 = run_n2f_train(tiny(tmp_path / 's1', steps=2, val_every=2))
    s2 = run_n2f_train(tiny(tmp_path / 's2', steps=2, val_every=2, stage='render', init_from=str(s1.best_path)))
    c1, c2 = torch.load(s1.best_path, weights_only=False)['net'], torch.load(s2.last_path, weights_only=False)['net']
    assert {k.split('.')[0] for k in c1 if not torch.equal(c1[k], c2[k])} == {'camera_module'}
    assert {'render_normal', 'render_mask', 'render_lmk'} <= set(s2.history[0]) and 'param_shape' not in s2.history[0]
    # resuming s2 from another starting checkpoint is refused, not silently answered with the old run
    import shutil; other = shutil.copy(s1.best_path, tmp_path / 'other.pt')
    with pytest.raises(InputError, match=r"continues a run that started from .*best\.pt.*starts from .*other\.pt"):
        run_n2f_train(tiny(tmp_path / 's2', steps=2, val_every=2, stage='render', init_from=str(other)))
    assert run_n2f_train(tiny(tmp_path / 's2', steps=2, val_every=2, stage='render', init_from=str(s1.best_path))).step == 2
    j = run_n2f_train(tiny(tmp_path / 'j', steps=2, val_every=2, stage='joint'))
    assert {'render_lmk', 'param_shape'} <= set(j.history[0])
    assert (tmp_path / 's1' / 'loss.png').exists()

def test_parameter_groups_and_schedule():
    cfg = tiny('unused')
    net = N2FNet(load_model('builtin', n_vertices=500, n_shape=8, n_expression=6), cfg.net)
    g = {x['name']: x for x in param_groups(net, cfg)}
    assert {k: v['lr'] for k, v in g.items()} == {'backbone': 1e-6, 'patch_embed': 1e-3, 'flame': 1e-3}
    assert g['patch_embed']['params'][0] is net.backbone.embeddings.patch_embeddings.weight
    n_backbone = sum(1 for _ in net.backbone.parameters())
    assert len(g['backbone']['params']) + len(g['patch_embed']['params']) == n_backbone
    cfg.stage = 'render'
    assert [x['name'] for x in param_groups(net, cfg)] == ['camera'] and param_groups(net, cfg)[0]['lr'] == 1e-4
    set_trainable(net, 'render')
    assert not any(p.requires_grad for p in net.backbone.parameters()) and all(p.requires_grad for p in net.camera_module.parameters())
    d = TrainConfig()
    assert (d.lr_backbone, d.lr_patch_embed, d.lr_flame, d.lr_camera, d.batch_size, d.steps) == (1e-6, 1e-3, 1e-3, 1e-4, 16, 200_000)
    # warm-up is linear, the rest a half cosine
    assert lr_factor(49, 100, 1100) == 0.5 and abs(lr_factor(600, 100, 1100) - 0.5) < 1e-12

def test_checkpoint_for_another_model_or_preset(tmp_path):
    cfg = tiny(tmp_path)
    net = N2FNet(load_model('builtin', n_vertices=500, n_shape=8, n_expression=6), cfg.net)
    p = save_checkpoint(tmp_path / 'c.pt', net, step=5)
    assert load_checkpoint(p, N2FNet(load_model('builtin', n_vertices=500, n_shape=8, n_expression=6), cfg.net))['step'] == 5
    with pytest.raises(InputError, match='layout'):
        load_checkpoint(p, N2FNet(load_model('builtin', n_vertices=500, n_shape=4, n_expression=6), cfg.net))
    with pytest.raises(InputError, match='backbone'):
        load_checkpoint(p, N2FNet(load_model('builtin', n_vertices=500, n_shape=8, n_expression=6), N2FConfig(backbone='vit_tiny', image_size=32, backbone_overrides={'num_hidden_layers': 1})))
    torch.save({'weights': 1}, tmp_path / 'other.pt')
    with pytest.raises(InputError, match='not a facebench N2FNet checkpoint'): load_checkpoint(tmp_path / 'other.pt', net)
    with pytest.raises(FileNotFoundError): load_checkpoint(tmp_path / 'none.pt')

def test_config_files_and_errors(tmp_path):
    cfg = tiny(tmp_path, stage='joint')
    for name in ('c.json', 'c.yaml'):
        back = load_train_config(save_train_config(cfg, tmp_path / name))
        assert config_to_dict(back) == config_to_dict(cfg)
    (tmp_path / 'bad.json').write_text(json.dumps({'synth': {'imagesize': 64}}))
    with pytest.raises(InputError, match=r"synth\.imagesize"): load_train_config(tmp_path / 'bad.json')
    with pytest.raises(InputError, match='stage'): config_from_dict({'stage': 'three'})
    with pytest.raises(InputError, match='must agree'): config_from_dict({'synth': {'image_size': 64}})
    (tmp_path / 'c.txt').write_text('{}')
    with pytest.raises(InputError, match='.json, .yaml'): load_train_config(tmp_path / 'c.txt')
    with pytest.raises(InputError, match='model spec'): load_model('smplx')
    with pytest.raises(InputError, match='no such file or folder'): load_model('toy')                    # the sphere stand-in is gone
    with pytest.raises(InputError, match="only to the 'builtin' model"): load_model('ict:x.npz', n_vertices=500)
    m = load_model('builtin', n_vertices=500, n_shape=3, n_expression=2)
    assert (m.n_shape, m.n_expression, m.expression_names) == (3, 2, ['AU1', 'AU2']) and 400 < m.n_vertices < 600

def test_cli(tmp_path):
    import argparse
    ap = argparse.ArgumentParser(); add_n2f_parser(ap.add_subparsers(dest='command'))
    save_train_config(tiny(tmp_path / 'run', steps=2, val_every=2), tmp_path / 'c.json')
    args = ap.parse_args(['n2f', 'train', '--config', str(tmp_path / 'c.json'), '--steps', '1', '--quiet'])
    assert main_n2f(args) == 0
    assert len(read_log(tmp_path / 'run' / 'log.csv')) == 1

def _ddp_worker(rank, world, out, port):
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        res = run_n2f_train(tiny(out, steps=2, val_every=2, ckpt_every=2))
        w = torch.cat([p.detach().flatten() for p in res.net.parameters()])
        torch.save({'rank': rank, 'w': w, 'loss': [r['loss'] for r in res.history]}, Path(out) / f'done{rank}.pt')
    finally:
        dist.destroy_process_group()

def test_ddp_two_gloo_processes(tmp_path):
    import torch.multiprocessing as mp, random
    mp.spawn(_ddp_worker, args=(2, str(tmp_path), random.randint(20000, 40000)), nprocs=2, join=True)
    d0, d1 = torch.load(tmp_path / 'done0.pt'), torch.load(tmp_path / 'done1.pt')
    assert torch.equal(d0['w'], d1['w'])              # gradients were averaged: both ranks hold the same weights
    torch.manual_seed(0)
    assert not torch.equal(d0['w'], torch.cat([p.detach().flatten() for p in N2FNet(load_model('builtin', n_vertices=500, n_shape=8, n_expression=6), tiny(tmp_path).net).parameters()]))
    rows = read_log(tmp_path / 'log.csv')
    assert [r['step'] for r in rows] == [1, 2]
    # rank streams are disjoint: rank r draws batch step*2 + r
    from facebench.synth import SyntheticFaces, SynthConfig
    from facebench.n2f.train import load_model as lm
    it0 = SyntheticFaces(lm('builtin', n_vertices=500), SynthConfig(image_size=32, batch_size=2), rank=0, world_size=2).indices()
    assert [next(it0) for _ in range(2)] == [0, 2]

def test_validation_metrics_and_best_on_cd(tmp_path):
    "Validation scores predictions through facebench.metrics; best_on='cd_mm' keeps the checkpoint with the lowest val CD."
    from facebench.n2f.train import prediction_metrics
    from facebench.n2f.model import N2FOutput
    from facebench.synth import fixed_set, SynthConfig
    from facebench.metrics import mesh_metrics
    r = run_n2f_train(tiny(tmp_path / 'cd', steps=4, val_every=1, best_on='cd_mm'))
    log = read_log(r.log_path)
    cds = [row['val_cd_mm'] for row in log]
    assert len(cds) == 4 and all(c > 0 for c in cds) and {'val_nme', 'val_mne_rad', 'val_cr_2mm'} <= set(log[0])
    ck = torch.load(r.best_path, weights_only=False)
    assert ck['best_val'] == min(cds) and ck['step'] == 1 + cds.index(min(cds))
    # oracle prediction (GT parameters and camera): CD 0, CR 1, NME 0; the template: CD of mesh_metrics directly
    m = load_model('builtin', n_vertices=500, n_shape=8, n_expression=6)
    b = fixed_set(m, SynthConfig(image_size=32, batch_size=2), 1, seed=5)[0]
    p = b.params
    gt = N2FOutput(omega=None, shape=p.shape, jaw6d=b.jaw6d, expression=p.expression, eyelids=p.eyelids, camera_rotation=b.camera.R,
                   camera_translation=b.camera.t, focal=b.camera.focal, principal=b.camera.principal)
    s = prediction_metrics(m, gt, p, b.landmarks, 32, regions=('face', 'nose'))
    assert s['cd_mm'].max() < 1e-3 and (s['cr_2mm'] == 1).all() and s['nme'].max() < 1e-4 and 'nose/cd_mm' in s
    z = torch.zeros_like
    neutral = N2FOutput(omega=None, shape=z(p.shape), jaw6d=torch.tensor([[1., 0, 0, 0, 1, 0]]).expand(2, 6), expression=z(p.expression),
                        eyelids=z(p.eyelids))
    s0 = prediction_metrics(m, neutral, p, b.landmarks, 32)
    direct = [mesh_metrics(m.neutral(1).vertices[0], m.faces, v, m.faces, units='m').cd_mm for v in m.from_params(p).vertices]
    assert torch.allclose(s0['cd_mm'], torch.tensor(direct, dtype=torch.float64), atol=1e-5) and s0['nme'].isnan().all()
    with pytest.raises(InputError, match='best_on must be one of'): tiny(tmp_path, best_on='loss')
    with pytest.raises(InputError, match='needs val_metrics=True'): tiny(tmp_path, best_on='cd_mm', val_metrics=False)

def test_validation_reuses_the_loss_forward_pass(tmp_path):
    "compute_loss(..., output=True) returns the prediction `predict` makes (no second forward pass needed); bad metric inputs are errors."
    from facebench.n2f.train import compute_loss, predict, prediction_metrics
    from facebench.synth import fixed_set, SynthConfig
    m = load_model('builtin', n_vertices=500, n_shape=8, n_expression=6)
    b = fixed_set(m, SynthConfig(image_size=32, batch_size=2), 1, seed=5)[0]
    torch.manual_seed(0)
    net = N2FNet(m, N2FConfig(backbone='vit_tiny', image_size=32)).eval()
    ref = predict(net, b, amp=False)
    for stage in ('param', 'render', 'joint'):
        with torch.no_grad(): L = compute_loss(net, m, b, tiny(tmp_path, stage=stage, amp=False), output=True)
        for k in ('omega', 'shape', 'jaw6d', 'expression', 'camera_raw', 'camera_rotation', 'camera_translation', 'focal', 'principal'):
            assert torch.allclose(getattr(L.output, k), getattr(ref, k), atol=1e-5), (stage, k)
    assert compute_loss(net, m, b, tiny(tmp_path)).output is None
    with pytest.raises(InputError, match=r"\['tail'\] are not regions"): prediction_metrics(m, ref, b.params, b.landmarks, 32, regions=('face', 'tail'))
    with pytest.raises(InputError, match=r'must be \(B,68,2\).*\(2, 5, 2\)'): prediction_metrics(m, ref, b.params, b.landmarks[:, :5], 32)

def test_net_config_from_checkpoint_and_dict_sections(tmp_path):
    from facebench.n2f.train import net_config_from_checkpoint
    m = load_model('builtin', n_vertices=500, n_shape=8, n_expression=6)
    cfg = tiny(tmp_path, net={'backbone': 'vit_tiny', 'image_size': 32, 'pretrained': 'somewhere', 'pooling': 'cls'})
    net = N2FNet(m, N2FConfig(backbone='vit_tiny', image_size=32, pooling='cls'))
    ck = load_checkpoint(save_checkpoint(tmp_path / 'a.pt', net, config=cfg))
    nc = net_config_from_checkpoint(ck)
    assert (nc.backbone, nc.image_size, nc.pooling, nc.pretrained, nc.allow_download) == ('vit_tiny', 32, 'cls', None, False)
    with pytest.raises(InputError, match='b.pt has no network config'):
        net_config_from_checkpoint(load_checkpoint(save_checkpoint(tmp_path / 'b.pt', net)), str(tmp_path / 'b.pt'))
    # sections given as dicts to the constructor become their dataclasses; unknown nested keys are named
    c = TrainConfig(net={'backbone': 'vit_tiny', 'image_size': 32}, synth={'image_size': 32, 'corruption': {'noise_std': 0.1}})
    assert isinstance(c.net, N2FConfig) and c.synth.corruption.noise_std == 0.1
    with pytest.raises(InputError, match=r"\['synth.corruption.noise'\]"): TrainConfig(synth={'corruption': {'noise': 1}})
