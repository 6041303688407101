"""N2FNet tables: the CI learning check (a tiny preset trained for a few hundred CPU steps beats the mean shape on a
held-out test set), metric wiring against oracle predictions, table runners, hooks and bad input."""
import os
os.environ['HF_HUB_OFFLINE'] = '1'
os.environ['TRANSFORMERS_OFFLINE'] = '1'
import dataclasses
import pytest
import torch
from facebench.core import InputError
from facebench.models.load import load_model
from facebench.synth import SynthConfig
from facebench.metrics import mesh_metrics, nme
from facebench.n2f.model import N2FOutput
from facebench.n2f.train import run_n2f_train
from facebench.n2f.tables import (TableConfig, Method, evaluate_methods, heldout_set as make_test_set, mean_shape_method,
                                  checkpoint_method, regressor_method, fitting_method, best_worst, case_images, tiny_preset,
                                  table1, table3, AblationConfig, finetune_hook, finetune_config, synthetic_real_folder,
                                  real_like, real_like_corruption)

@pytest.fixture(scope='module')
def head():
    return load_model('builtin', n_shape=8, n_expression=6, n_vertices=500, device='cpu')

def oracle_method(name='oracle'):
    "Predicts the ground truth: parameters and the crop camera of the batch."
    def run(b):
        p = b.params
        return N2FOutput(omega=None, shape=p.shape, jaw6d=b.jaw6d, expression=p.expression, eyelids=p.eyelids,
                         camera_rotation=b.camera.R, camera_translation=b.camera.t, focal=b.camera.focal, principal=b.camera.principal)
    return Method(name, run)

def test_tiny_preset_learns_below_the_mean_shape(tmp_path, head):
    """The CI learning check: stage 1 of the tiny preset (tiny ViT, 32 px, batch 32, 400 steps, fixed seed) has a
    held-out test CD at most 0.9x the mean shape's. Measured on this CPU: ratio 0.77 for seeds 0, 1, 2 (about 25 s)."""
    cfg = tiny_preset(tmp_path, steps=400, batch_size=32, test_batches=2, test_batch_size=32, seed=0)
    r = run_n2f_train(dataclasses.replace(cfg.train, stage='param'), head)
    assert r.step == 400 and r.best_path is not None
    table = dataclasses.replace(cfg.table, speed_batch_sizes=())
    t = evaluate_methods([checkpoint_method(r.best_path, head, 'stage 1'), mean_shape_method(head, 32)], head, table, cfg.train.synth)
    learned, mean = t['stage 1'].cd_mm, t['mean shape'].cd_mm
    print(f"tiny preset test CD {learned:.3f} mm vs mean shape {mean:.3f} mm (ratio {learned / mean:.3f})")
    assert learned <= 0.9 * mean
    # the validation CD logged during training is the same metric on another fixed set: same ballpark
    assert 0.5 * learned < r.history[-1]['val_cd_mm'] < 1.5 * learned

def test_oracle_scores_zero_and_mean_shape_matches_direct_metrics(head):
    cfg = TableConfig(test_batches=2, batch_size=3, speed_batch_sizes=())
    synth = SynthConfig(image_size=32)
    t = evaluate_methods([oracle_method(), mean_shape_method(head, 32)], head, cfg, synth)
    o = t['oracle']
    assert o.cd_mm < 1e-3 and o.cr_2mm == 1.0 and o.nme < 1e-4 and o.mne_rad < 1e-3
    batches = make_test_set(head, cfg, synth)
    gt = torch.cat([head.from_params(b.params).vertices for b in batches])
    direct = torch.tensor([mesh_metrics(head.neutral(1).vertices[0], head.faces, v, head.faces, units='m').cd_mm for v in gt], dtype=torch.float64)
    assert torch.allclose(t['mean shape'].per_sample['cd_mm'], direct, atol=1e-5)
    # mean-shape NME: the template's landmarks through the prior camera, against the rendered GT landmarks
    m = mean_shape_method(head, 32).predict(batches[0])
    uv, _ = m.camera(32).project(head.neutral(3).landmarks)
    assert torch.allclose(t['mean shape'].per_sample['nme'][:3], nme(uv, batches[0].landmarks, 'inter_ocular'), atol=1e-6)
    # the test set does not depend on which methods ran, and differs from the validation stream
    assert torch.equal(make_test_set(head, cfg, synth)[0].normal, batches[0].normal)
    assert t.n_test == 6 and 'oracle' in t.markdown() and 'CD (mm)' in str(t)
    best, worst = best_worst(t, 'mean shape', 2)
    d = t['mean shape'].per_sample['cd_mm']
    assert d[best[0]] == d.min() and d[worst[0]] == d.max()
    ims, titles = case_images(t, head, 'oracle', [best[0]])
    # the oracle rendered with its own (= GT) camera reproduces the GT normal map
    assert ims[0].shape == (32, 32, 3) and abs(ims[0] - ims[1]).max() < 1e-4

def test_fitting_and_regressor_rows_are_timed(tmp_path, head):
    cfg = tiny_preset(tmp_path, steps=2)
    r = run_n2f_train(dataclasses.replace(cfg.train, stage='param'), head)
    table = dataclasses.replace(cfg.table, test_batches=1, batch_size=2, speed_batch_sizes=(1, 2), speed_repeats=1)
    quick = dataclasses.replace(cfg.fit, coarse_steps=2, fine_steps=2)
    t = evaluate_methods([regressor_method(r.net, 'net'), fitting_method(head, quick)], head, table, cfg.train.synth)
    assert [s.batch_size for s in t['net'].speed] == [1, 2] and t['net'].fps > 0 and t['fitting baseline'].fps > 0
    assert 'FPS at batch 1' in t.notes[0]

def test_table_runners_and_finetune_hook(tmp_path, head):
    """Table 1 with the real-data fine-tuning hook on a stand-in 'real' folder (4 images, 2 steps per stage) and a
    real-like test set; Table 3 reuses the two-stage run."""
    cfg = tiny_preset(tmp_path, steps=2)
    folder = synthetic_real_folder(tmp_path / 'real', head, n=4, image_size=32, seed=1)
    real = finetune_hook(finetune_config(cfg, folder.data, steps=2, warmup_steps=1, batch_size=2))
    seen = {}
    def hook(ckpt, config, model):
        seen['ckpt'] = ckpt
        seen['out'] = real(ckpt, config, model)
        return seen['out']
    cfg_real = real_like(dataclasses.replace(cfg, finetune=hook))
    t1 = table1(cfg_real, head)
    assert t1.methods == ['joint', 'two-stage', '+ fine-tuning'] and seen['ckpt'].name == 'best.pt'
    assert seen['ckpt'].parent == tmp_path / 'normal' / 'stage2'
    assert seen['out'] == real.stage2.last_path == tmp_path / 'finetune' / 'stage2' / 'last.pt'    # no validation images: last
    assert len(real.stage1.pseudo_gt.written) == 4 and real.stage2.pseudo_gt is None
    two = torch.load(seen['ckpt'], weights_only=False)
    s1 = torch.load(real.stage1.last_path, weights_only=False)
    s2 = torch.load(seen['out'], weights_only=False)
    changed = lambda a, b: {k.split('.')[0] for k in a['net'] if not torch.equal(a['net'][k], b['net'][k])}
    assert 'flame_module' in changed(two, s1) and 'camera_module' not in changed(two, s1)   # stage 1: L_param, camera frozen
    assert changed(s1, s2) == {'camera_module'}                                               # stage 2: camera only
    assert changed(two, s2) >= {'flame_module', 'camera_module'}                              # the fine-tuned net differs
    assert (s1['extra']['stage'], s2['extra']['stage'], s2['config']['render_weights']['landmarks']) == ('param', 'render', 10000.0)
    assert t1['+ fine-tuning'].cd_mm != t1['two-stage'].cd_mm
    # the real-like test set: corrupted network inputs, exact targets; the stand-in folder carries the same corruption
    b = make_test_set(head, cfg_real.table)[0]
    ang = lambda a, c, m: torch.rad2deg(torch.acos((a * c).sum(1).clamp(-1, 1)))[m[:, 0] > 0.5].mean()
    fg = (b.normal.norm(dim=1, keepdim=True) > 0.5).float()
    assert 2 < ang(b.input_normal, b.normal, fg) < 45 and cfg_real.table.synth.corruption == real_like_corruption()
    assert not torch.equal(b.input_normal, b.normal) and torch.equal(make_test_set(head, cfg.table, cfg.train.synth)[0].normal, b.normal)
    from facebench.n2f.real import RealFaces, NormalSource
    items = folder.data.items()
    est = RealFaces(items, 32, normals=NormalSource(directory=folder.data.normals))[0]
    clean = RealFaces(items, 32, normals=NormalSource(directory=folder.clean_normals, space='image'))[0]
    assert 2 < ang(est['normal'][None], clean['normal'][None], clean['foreground'][None]) < 45
    with pytest.raises(InputError, match='takes 32px crops'):
        finetune_hook(finetune_config(cfg, dataclasses.replace(folder.data, image_size=64), net=dict(backbone='vit_tiny', image_size=64)))(seen['ckpt'], cfg, head)
    # Table 3 reuses the two-stage run
    mtime = (tmp_path / 'normal' / 'stage1' / 'last.pt').stat().st_mtime
    assert torch.load(tmp_path / 'joint' / 'last.pt', weights_only=False)['step'] == 4     # stage 1 + stage 2 steps
    t3 = table3(cfg, head)
    assert (tmp_path / 'normal' / 'stage1' / 'last.pt').stat().st_mtime == mtime
    assert t3.methods == ['N2FNet', 'w/o segmentation', 'fitting baseline', 'mean shape']
    ck = torch.load(tmp_path / 'normal_noseg' / 'stage2' / 'best.pt', weights_only=False)
    assert ck['config']['net']['input'] == 'normal_noseg' and ck['config']['stage'] == 'render'

def test_bad_input(head):
    synth = SynthConfig(image_size=32)
    with pytest.raises(InputError, match='methods` is empty'): evaluate_methods([], head, TableConfig(), synth)
    with pytest.raises(InputError, match='must be unique'):
        evaluate_methods([mean_shape_method(head, 32), mean_shape_method(head, 32)], head, TableConfig(), synth)
    with pytest.raises(InputError, match='must be a `Method`'): evaluate_methods([lambda b: b], head, TableConfig(), synth)
    with pytest.raises(InputError, match='no SynthConfig'): evaluate_methods([mean_shape_method(head, 32)], head, TableConfig())
    with pytest.raises(InputError, match='test_batches must be a positive int'): TableConfig(test_batches=0)
    with pytest.raises(InputError, match='speed_batch_sizes'): TableConfig(speed_batch_sizes=(0,))
    with pytest.raises(InputError, match='must be an N2FNet'): regressor_method(torch.nn.Linear(2, 2))
    t = evaluate_methods([mean_shape_method(head, 32)], head, TableConfig(test_batches=1, batch_size=2), synth)
    with pytest.raises(KeyError, match="no row 'x'"): t['x']
    with pytest.raises(InputError, match='unknown metric'): best_worst(t, 'mean shape', 1, 'psnr')
    with pytest.raises(InputError, match='out of range'): case_images(t, head, 'mean shape', [5])
    from facebench.n2f.tables import table2
    with pytest.raises(InputError, match='unknown input mode'): table2(tiny_preset('unused'), head, inputs=('rgb',))
    with pytest.raises(InputError, match='must be a FinetuneConfig'): finetune_hook({'steps': 2})
    with pytest.raises(InputError, match='must be a RealDataConfig'): finetune_config(tiny_preset('unused'), 'folder')
    with pytest.raises(InputError, match='must be a facebench.synth.Corruption'): real_like(tiny_preset('unused'), {'noise_std': 1})
    with pytest.raises(InputError, match='must be a facebench.synth.Corruption'): synthetic_real_folder('unused', head, corruption=0.1)
