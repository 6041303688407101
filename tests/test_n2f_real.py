"""Real-data path of N2FNet: 300W / CelebA-HQ loaders against the renderer, normal and mask sources, their errors,
pseudo-GT cache and resume, fine-tuning stages, exact resume and the command line."""
import os
os.environ['HF_HUB_OFFLINE'] = '1'
os.environ['TRANSFORMERS_OFFLINE'] = '1'
import argparse, json, shutil
from pathlib import Path
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from facebench.core import InputError
from facebench.metrics.datasets import DatasetError
from facebench.models.builtin import builtin_head
from facebench.render.cameras import crop_camera
from facebench.render.render import render
from facebench.n2f.fit import FitConfig
from facebench.n2f.losses import render_face
from facebench.metrics.datasets import read_image
from facebench.n2f.real import (load_300w, load_celebahq, RealFaces, NormalSource, MaskSource, collate_real,
                                write_synthetic_folder, make_pseudo_gt, read_pseudo_gt, precompute_normals, FinetuneConfig,
                                finetune_config_from_dict, run_n2f_finetune, step_indices, add_finetune_parser, main_n2f_real,
                                add_n2f_cli_parser, main_n2f_cli)
from facebench.n2f.train import read_log

S = 32

@pytest.fixture(scope='module')
def head():
    torch.set_num_threads(1)
    return builtin_head(n_vertices=500, n_shape=8, n_expression=6)

@pytest.fixture(scope='module')
def w300(head, tmp_path_factory):
    return write_synthetic_folder(tmp_path_factory.mktemp('w300'), head, n=3, layout='300w', image_hw=(96, 80), seed=3)

@pytest.fixture(scope='module')
def celeb(head, tmp_path_factory):
    return write_synthetic_folder(tmp_path_factory.mktemp('celeb'), head, n=2, layout='celebahq', image_hw=(80, 80),
                                  normal_format='npy', seed=4)

def _dataset(gt, **kw):
    items = load_300w(gt['root']) if (gt['root'].name == '300W') else load_celebahq(gt['root'])
    kw.setdefault('normals', NormalSource(directory=gt['normals'], space='image'))
    kw.setdefault('masks', MaskSource(directory=gt['masks'], space='image'))
    return RealFaces(items, image_size=S, **kw)

def _check_against_renderer(head, gt, b):
    "Landmarks, intrinsics and normals of the loaded crops against the renderer through the cropped ground-truth camera."
    cam = crop_camera(gt['camera'].to(dtype=torch.float64), b.box.double(), S)
    out = head.from_params(gt['params'])
    uv, _ = cam.project(out.landmarks.double())
    assert (uv - b.landmarks.double()).abs().max() < 2e-3
    assert torch.allclose(cam.focal, b.camera.focal.double(), rtol=1e-5) and torch.allclose(cam.principal, b.camera.principal.double(), atol=1e-3)
    r = render(out, cam.to(dtype=torch.float32), ('normal', 'mask'))
    both = (r.mask[:, 0] > 0.99) & (b.face_mask[:, 0] > 0.99)
    both[:, :2] = both[:, -2:] = False
    cos = (r.normal * b.normal).sum(1)[both]
    assert both.sum() > 50 and cos.median() > 0.99 and cos.mean() > 0.95, (cos.mean(), cos.median())

def test_300w_folder_crops_like_the_renderer(head, w300):
    items = load_300w(w300['root'])
    assert [it.key for it in items] == w300['keys'] and all(it.landmarks.shape == (68, 2) for it in items)
    b = collate_real([_dataset(w300)[i] for i in range(3)]).attach()
    assert b.image.shape == (3, 3, S, S) and b.normal.shape == (3, 3, S, S) and b.face_mask.shape == (3, 1, S, S)
    assert 0 <= float(b.image.min()) and float(b.image.max()) <= 1 and b.params is None
    _check_against_renderer(head, w300, b)

def test_celebahq_folder_npy_normals(head, celeb):
    items = load_celebahq(celeb['root'])
    assert [it.key for it in items] == celeb['keys'] and items[0].image.suffix == '.jpg'
    b = collate_real([_dataset(celeb)[i] for i in range(2)]).attach()
    _check_against_renderer(head, celeb, b)
    # without a mask source, S_face is the normal map's foreground
    b2 = collate_real([_dataset(celeb, masks=None)[i] for i in range(2)]).attach()
    assert torch.equal(b2.face_mask, (b2.normal.norm(dim=1, keepdim=True) > 0.5).to(b2.normal))

def test_landmark_file_errors(w300, celeb, tmp_path):
    r = tmp_path / 'w'; shutil.copytree(w300['root'], r)
    pts = sorted(r.rglob('*.pts'))
    pts[0].unlink()
    with pytest.raises(DatasetError, match=f"{pts[0].name} missing"): load_300w(r)
    pts[1].write_text('version: 1\nn_points: 67\n{\n' + '10 10\n' * 67 + '}\n')
    with pytest.raises(DatasetError, match=r"expected \(68, 2\), got \(67, 2\)") as e: load_300w(r)
    assert pts[1].name in str(e.value)
    c = tmp_path / 'c'; shutil.copytree(celeb['root'], c)
    lm = sorted((c / 'landmarks').iterdir())
    np.save(lm[0], np.zeros((60, 2)))
    with pytest.raises(DatasetError, match=r"expected \(68, 2\) landmarks, found shape \(60, 2\)") as e: load_celebahq(c)
    assert lm[0].name in str(e.value)
    lm[0].unlink(); lm[1].unlink()
    with pytest.raises(DatasetError, match=r"(?s)2 problem\(s\).*landmarks/00000\{\.npy,\.txt,\.pts\} missing"): load_celebahq(c)
    shutil.rmtree(c / 'landmarks')
    with pytest.raises(DatasetError, match='landmark folder landmarks/ missing'): load_celebahq(c)
    # landmarks of another image (far outside this one)
    items = load_300w(w300['root']); items[0].landmarks = items[0].landmarks + 500
    with pytest.raises(DatasetError, match='outside the 80x96 image'): RealFaces(items, S)[0]

def test_image_errors(tmp_path):
    rgb = (np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'ok.png')
    x = read_image(tmp_path / 'ok.png')
    assert x.shape == (3, 40, 48) and torch.allclose(x, torch.as_tensor(rgb / 255, dtype=torch.float32).permute(2, 0, 1))
    Image.fromarray(rgb[..., 0]).save(tmp_path / 'grey.png')
    with pytest.raises(DatasetError, match=r"grey\.png: expected 3 channels \(RGB\), found 1 \(mode L\)"): read_image(tmp_path / 'grey.png')
    assert read_image(tmp_path / 'grey.png', convert_rgb=True).shape == (3, 40, 48)
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(tmp_path / 'rgba.png')
    with pytest.raises(DatasetError, match=r"found 4 \(mode RGBA\)"): read_image(tmp_path / 'rgba.png')
    Image.fromarray(rgb[:16, :20]).save(tmp_path / 'small.png')
    with pytest.raises(DatasetError, match=r"small\.png is 20x16 pixels: expected at least 32"): read_image(tmp_path / 'small.png')
    with pytest.raises(DatasetError, match='does not exist'): read_image(tmp_path / 'nope.png')

def test_normal_and_mask_file_errors(w300, tmp_path):
    items = load_300w(w300['root'])
    key = items[0].key
    n_img = NormalSource(directory=w300['normals'], space='image').load(key, (96, 80), torch.tensor([10., 20., 50.], dtype=torch.float64), S)[0]
    d = tmp_path / 'n'
    def ds_with(arr, name='x.npy', space='crop', mask=False):
        (d / Path(key).parent).mkdir(parents=True, exist_ok=True)
        p = d / (key + Path(name).suffix)
        for q in d.rglob('*'):
            if q.is_file(): q.unlink()
        np.save(p, arr) if p.suffix == '.npy' else Image.fromarray(arr).save(p)
        src = MaskSource(directory=d, space=space) if mask else NormalSource(directory=d, space=space, convention='opencv')
        return RealFaces(items[:1], S, **({'masks': src} if mask else {'normals': src})), p
    good = n_img.permute(1, 2, 0).numpy().astype(np.float32)
    ds, p = ds_with(good)
    assert ds[0]['normal'].shape == (3, S, S)
    ds, p = ds_with(good * 255)                                                   # 0..255 instead of [-1, 1]
    with pytest.raises(InputError, match=r"values up to .*0\.\.255") as e: ds[0]
    assert str(p) in str(e.value)
    ds, p = ds_with(good * 0.5)                                                   # not unit length
    with pytest.raises(InputError, match='not unit length'): ds[0]
    ds, p = ds_with(((good + 1) / 2) * (np.abs(good).sum(-1, keepdims=True) > 0))  # RGB-encoded in [0, 1]
    with pytest.raises(InputError, match='rgb_to_normal'): ds[0]
    ds, p = ds_with(good[:20])                                                    # crop maps must be S x S
    with pytest.raises(InputError, match=rf"expected a {S}x{S} map of the crop \(space='crop'\), found {S}x20") as e: ds[0]
    assert str(p) in str(e.value)
    ds, p = ds_with(np.zeros((50, 80, 3), np.float32), space='image')              # whole-image maps: the image's aspect ratio
    with pytest.raises(InputError, match=r"aspect ratio \(80x96\), found 80x50"): ds[0]
    ds, p = ds_with(good[..., :2])
    with pytest.raises(InputError, match=r"expected an array of shape \(H,W,3\)"): ds[0]
    photo = (np.random.default_rng(1).random((S, S, 3)) * 255).astype(np.uint8)   # a photo, not a normal map
    ds, p = ds_with(photo, 'x.png')
    with pytest.raises(InputError, match='not unit length') as e: ds[0]
    assert p.name in str(e.value)
    ds, p = ds_with(np.full((S, S), 255, np.float32), mask=True)                  # masks: [0, 1] for NPY
    with pytest.raises(InputError, match=r"face mask values must lie in \[0, 1\], found range \[255, 255\]"): ds[0]
    ds, p = ds_with(np.zeros((S, S, 3), np.uint8), 'x.png', mask=True)
    with pytest.raises(InputError, match='single-channel'): ds[0]
    ds, p = ds_with(np.zeros((S, S), np.uint8), 'x.png', mask=True)
    with pytest.raises(InputError, match='empty'): ds[0]
    with pytest.raises(DatasetError, match=r"no file for image .* expected .*\.png\|\.npy"):
        RealFaces(items[1:2], S, normals=NormalSource(directory=d))[0]
    with pytest.raises(InputError, match='exactly one'): NormalSource()
    with pytest.raises(InputError, match="`space` must be one of"): NormalSource(directory=d, space='uv')

def _frontal(images):
    "A stand-in estimator: frontal normals (0, 0, -1) tilted towards the image border, on a disc."
    B, _, H, W = images.shape
    y, x = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing='ij')
    n = F.normalize(torch.stack([0.5 * x, 0.5 * y, -torch.ones_like(x)]), dim=0) * ((x ** 2 + y ** 2) < 0.8)
    return n.expand(B, 3, H, W).to(images)

def test_estimator_callables_and_precomputed_crops(w300, tmp_path):
    ds = RealFaces(load_300w(w300['root']), S)
    b = collate_real([ds[0], ds[1]]).attach(NormalSource(estimator=_frontal), MaskSource(estimator=lambda im: im[:, :1] * 0 + 1))
    assert torch.equal(b.normal, _frontal(b.image)) and float(b.face_mask.min()) == 1
    for bad, msg in ((lambda im: _frontal(im) * 255, '0..255'), (lambda im: _frontal(im)[:, :, :16], r'shape \(2, 3, 32, 32\)'),
                     (lambda im: _frontal(im) * 0.5, 'not unit length')):
        with pytest.raises(InputError, match=msg): collate_real([ds[0], ds[1]]).attach(NormalSource(estimator=bad))
    with pytest.raises(InputError, match=r"mask estimator .* \[0, 1\], found range \[2, 2\]"):
        collate_real([ds[0]]).attach(NormalSource(estimator=_frontal), MaskSource(estimator=lambda im: im[:, :1] * 0 + 2))
    with pytest.raises(InputError, match='no normal maps'): collate_real([ds[0]]).attach()
    for fmt in ('png', 'npy'):
        paths = precompute_normals(ds, _frontal, tmp_path / fmt, format=fmt, progress=False)
        assert len(paths) == 3 and not list((tmp_path / fmt).rglob('*.tmp'))
        ds2 = RealFaces(ds.items, S, normals=NormalSource(directory=tmp_path / fmt, space='crop'))
        n = collate_real([ds2[0]]).attach().normal
        ref = _frontal(n)
        assert (n - ref).abs().max() < (1e-6 if fmt == 'npy' else 1e-2)

def test_pseudo_gt_cache_and_resume(head, w300, tmp_path):
    ds = _dataset(w300)
    fc = FitConfig(coarse_steps=15, fine_steps=15, lr=3e-2)
    r1 = make_pseudo_gt(ds, head, tmp_path / 'pgt', fc, batch_size=2, max_items=2, progress=False)
    assert len(r1.written) == 2 and r1.remaining == 1 and r1.skipped == []
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / 'pgt').rglob('*.npz')}
    assert len(files) == 2 and not list((tmp_path / 'pgt').rglob('*.tmp'))
    r2 = make_pseudo_gt(ds, head, tmp_path / 'pgt', fc, batch_size=2, progress=False)
    assert r2.written == [w300['keys'][2]] and sorted(r2.skipped) == sorted(w300['keys'][:2]) and r2.remaining == 0
    assert all(p.stat().st_mtime_ns == t for p, t in files.items())          # cached files untouched
    # the fit explains the real landmarks: reprojected through its camera they land near the targets
    ds.pseudo_gt = tmp_path / 'pgt'; ds.layout = None
    b = collate_real([ds[i] for i in range(3)])
    lm = render_face(head, b.params, b.camera).landmarks
    err = (lm - b.landmarks).norm(dim=-1).mean()
    spread = (b.landmarks - b.landmarks.mean(1, keepdim=True)).norm(dim=-1).mean()
    assert err < 0.2 * spread, (err, spread)
    z = read_pseudo_gt(tmp_path / 'pgt' / (w300['keys'][0] + '.npz'))
    assert z['shape'].shape == (8,) and z['R'].shape == (3, 3) and np.allclose(z['R'] @ z['R'].T, np.eye(3), atol=1e-5)
    # cache written for another model or another crop is refused
    other = builtin_head(n_vertices=500, n_shape=4, n_expression=6)
    with pytest.raises(InputError, match='was fitted for layout'): make_pseudo_gt(ds, other, tmp_path / 'pgt', fc, progress=False)
    from facebench.n2f.model import ParamLayout
    with pytest.raises(InputError, match='parameter layout'): RealFaces(ds.items, S, pseudo_gt=tmp_path / 'pgt', layout=ParamLayout.from_model(other))[0]
    with pytest.raises(InputError, match='crop box'): RealFaces(ds.items, S, crop_scale=1.5, pseudo_gt=tmp_path / 'pgt')[0]
    with pytest.raises(DatasetError, match='run `make_pseudo_gt` first'): RealFaces(ds.items, S, pseudo_gt=tmp_path / 'none')[0]

def _cfg(gt, out, **kw):
    d = dict(data=dict(root=str(gt['root']), normals=str(gt['normals']), normal_space='image', masks=str(gt['masks']), mask_space='image',
                       image_size=S), n_vertices=500, n_shape=8, n_expression=6, net=dict(backbone='vit_tiny', image_size=S),
             fit=dict(coarse_steps=15, fine_steps=15, lr=3e-2), pseudo_gt_dir=str(out.parent / 'pgt'), steps=10, batch_size=3,
             warmup_steps=1, device='cpu', progress=False, out_dir=str(out), ckpt_every=2)
    d.update(kw)
    return finetune_config_from_dict(d)

def test_finetune_stages_reduce_the_loss(head, w300, tmp_path):
    s1 = run_n2f_finetune(_cfg(w300, tmp_path / 's1', lr_flame=3e-3), model=head)       # makes the pseudo-GT first
    assert len(s1.pseudo_gt.written) == 3 and s1.step == 10
    l1 = [r['loss'] for r in s1.history]                                              # every step sees all 3 images
    assert l1[-1] < 0.5 * l1[0], l1
    assert {'param_shape', 'param_expression'} <= set(s1.history[0]) and 'render_lmk' not in s1.history[0]
    s2 = run_n2f_finetune(_cfg(w300, tmp_path / 's2', stage='render', init_from=str(s1.last_path), lr_camera=3e-3), model=head)
    l2 = [r['loss'] for r in s2.history]
    assert s2.pseudo_gt is None and l2[-1] < 0.7 * l2[0], l2
    assert {'render_lmk', 'render_normal', 'render_mask'} <= set(s2.history[0])
    c1, c2 = torch.load(s1.last_path, weights_only=False), torch.load(s2.last_path, weights_only=False)
    assert {k.split('.')[0] for k in c1['net'] if not torch.equal(c1['net'][k], c2['net'][k])} == {'camera_module'}
    assert c2['config']['render_weights']['landmarks'] == 10000.0 and c2['extra']['stage'] == 'render'
    # stage 2 against renders of the pseudo-GT fit instead of the estimator's maps
    s3 = run_n2f_finetune(_cfg(w300, tmp_path / 's3', stage='render', render_targets='fit', steps=2), model=head)
    assert s3.step == 2 and np.isfinite(s3.history[-1]['loss'])
    with pytest.raises(InputError, match="checkpoint of fine-tuning stage 'render'"):
        run_n2f_finetune(_cfg(w300, tmp_path / 's2', steps=12), model=head)

def test_exact_resume_and_validation(head, w300, tmp_path):
    kw = dict(steps=4, batch_size=2, val_items=1, val_every=2)
    full = run_n2f_finetune(_cfg(w300, tmp_path / 'full', **kw), model=head)
    run_n2f_finetune(_cfg(w300, tmp_path / 'cut', stop_after=2, **kw), model=head)
    rest = run_n2f_finetune(_cfg(w300, tmp_path / 'cut', **kw), model=head)
    a, b = read_log(full.log_path), read_log(rest.log_path)
    assert [r['step'] for r in b] == [1, 2, 3, 4] and [r['loss'] for r in a] == [r['loss'] for r in b]
    assert a[-1]['val_total'] == b[-1]['val_total'] and full.best_path.exists()
    # the data order is a per-epoch permutation: every image once per epoch
    seen = sum((step_indices(s, 5, 2, 0) for s in range(5)), [])
    assert sorted(seen) == sorted(list(range(5)) * 2)

def test_config_errors(w300, tmp_path):
    with pytest.raises(InputError, match=r"unknown config key\(s\) \['data.bogus'\]"): _cfg(w300, tmp_path, data=dict(bogus=1))
    with pytest.raises(InputError, match=r"unknown config key\(s\) \['fit.render_weights.lmk'\]"): _cfg(w300, tmp_path, fit=dict(render_weights=dict(lmk=1)))
    with pytest.raises(InputError, match='data.image_size=32 but net.image_size=64'): _cfg(w300, tmp_path, net=dict(backbone='vit_tiny', image_size=64))
    with pytest.raises(InputError, match='stage must be one of'): _cfg(w300, tmp_path, stage='joint')
    with pytest.raises(InputError, match='layout must be one of'): _cfg(w300, tmp_path, data=dict(layout='afw'))
    with pytest.raises(InputError, match='needs UV maps'): run_n2f_finetune(_cfg(w300, tmp_path, net=dict(backbone='vit_tiny', image_size=S, input='uv')))
    cfg = _cfg(w300, tmp_path); cfg.data.normals = None
    with pytest.raises(InputError, match='need normal maps'): run_n2f_finetune(cfg)
    cfg = _cfg(w300, tmp_path, auto_pseudo_gt=False, pseudo_gt_dir=str(tmp_path / 'empty'))
    with pytest.raises(DatasetError, match='no pseudo ground truth'): run_n2f_finetune(cfg)
    d = FinetuneConfig()
    assert (d.render_weights.landmarks, d.render_weights.normal, d.render_weights.mask, d.fit.render_weights.landmarks) == (10000.0, 1.0, 10.0, 10000.0)
    assert (d.lr_backbone, d.lr_patch_embed, d.lr_flame, d.lr_camera, d.batch_size) == (1e-6, 1e-3, 1e-3, 1e-4, 16)

def test_command_line(w300, tmp_path):
    cfg = json.loads(json.dumps(dict(n_vertices=500, n_shape=8, n_expression=6, net=dict(backbone='vit_tiny', image_size=S),
                                     data=dict(image_size=S, normal_space='image', mask_space='image'), fit=dict(coarse_steps=5, fine_steps=5),
                                     batch_size=3, warmup_steps=1, device='cpu')))
    (tmp_path / 'c.json').write_text(json.dumps(cfg))
    p = argparse.ArgumentParser(); sub = p.add_subparsers(dest='n2f_command', required=True); add_finetune_parser(sub)
    common = ['--config', str(tmp_path / 'c.json'), '--root', str(w300['root']), '--layout', '300w', '--normals', str(w300['normals']),
              '--masks', str(w300['masks']), '--pseudo-gt', str(tmp_path / 'pgt'), '--out', str(tmp_path / 'run'), '--quiet']
    assert main_n2f_real(p.parse_args(['pseudo-gt'] + common)) == 0
    assert len(list((tmp_path / 'pgt').rglob('*.npz'))) == 3
    assert main_n2f_real(p.parse_args(['finetune'] + common + ['--steps', '2', '--stage', 'param'])) == 0
    assert (tmp_path / 'run' / 'last.pt').exists() and len(read_log(tmp_path / 'run' / 'log.csv')) == 2
    # the whole `n2f` command: train from facebench.n2f.train beside finetune / pseudo-gt
    q = argparse.ArgumentParser(); add_n2f_cli_parser(q.add_subparsers(dest='command'))
    a = q.parse_args(['n2f', 'finetune'] + common + ['--steps', '3', '--stage', 'param'])
    assert a.n2f_command == 'finetune' and main_n2f_cli(a) == 0 and len(read_log(tmp_path / 'run' / 'log.csv')) == 3
    assert q.parse_args(['n2f', 'train', '--steps', '1']).n2f_command == 'train'

def test_shared_train_config_and_best_on(head, w300, tmp_path):
    "The fine-tuning run hands every shared field to the training loop (val_every, best_on, ...); config files load like TrainConfig's."
    from facebench.n2f.real import train_config, load_finetune_config, finetune_config_to_dict
    cfg = _cfg(w300, tmp_path / 'a', val_every=7, log_every=3, ckpt_every=5, best_on='nme', stop_after=2, grad_clip=1.5)
    tc = train_config(cfg)
    assert (tc.val_every, tc.log_every, tc.ckpt_every, tc.best_on, tc.stop_after, tc.grad_clip, tc.steps, tc.out_dir) == \
           (7, 3, 5, 'nme', 2, 1.5, 10, str(tmp_path / 'a'))
    assert tc.net == cfg.net and tc.synth.image_size == S
    for name in ('c.json', 'c.yaml'):
        p = tmp_path / name
        p.write_text(json.dumps(finetune_config_to_dict(cfg)) if name.endswith('json') else __import__('yaml').safe_dump(finetune_config_to_dict(cfg)))
        assert finetune_config_to_dict(load_finetune_config(p)) == finetune_config_to_dict(cfg)
    (tmp_path / 'c.txt').write_text('{}')
    with pytest.raises(InputError, match='.json, .yaml'): load_finetune_config(tmp_path / 'c.txt')
    with pytest.raises(InputError, match='best_on must be one of'): _cfg(w300, tmp_path, best_on='loss')
    # best_on='cd_mm' picks best.pt by the validation CD against the pseudo-GT
    r = run_n2f_finetune(_cfg(w300, tmp_path / 'cd', steps=2, batch_size=2, val_items=1, val_every=1, best_on='cd_mm',
                              fit=dict(coarse_steps=2, fine_steps=2)), model=head)
    cds = [row['val_cd_mm'] for row in read_log(r.log_path)]
    assert len(cds) == 2 and torch.load(r.best_path, weights_only=False)['best_val'] == min(cds)
    # stage 2 against the estimator's maps has no pseudo-GT to score: best_on='cd_mm' is refused, not silently replaced
    with pytest.raises(InputError, match="best_on='cd_mm' is not among the validation values"):
        run_n2f_finetune(_cfg(w300, tmp_path / 'r', stage='render', steps=1, batch_size=2, val_items=1, val_every=1, best_on='cd_mm'), model=head)
