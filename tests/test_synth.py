"""facebench.synth against independent references: the crop written out from the paper's formula, the sampled
distributions recovered by moment estimates, landmarks re-projected with a hand-written pinhole, bit-exact fixed sets."""
import math
from pathlib import Path
import numpy as np
import pytest
import torch
from facebench.core import InputError
from facebench.models.builtin import builtin_head, builtin_head_data
from facebench.rotations import matrix_to_euler, rotation_6d_to_matrix, axis_angle_to_matrix
from facebench.synth import (SynthConfig, Corruption, SyntheticFaces, SynthBatch, fixed_set, sample_camera, deca_crop_box,
                             corrupt, units_per_metre, synth_throughput)

ICT = Path('/work/shared/assets/ict-facekit/ict_facekit_light.npz')
SMALL = SynthConfig(image_size=48, batch_size=2)

def ray_cast_normals(verts, faces, R, t, focal, principal, H, W):
    "Reference camera-frame normals (H,W,3) by casting each pixel-centre ray (Moller-Trumbore, nearest hit) and interpolating area-weighted vertex normals; NaN where the ray misses."
    v, f = np.asarray(verts, float), np.asarray(faces)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for k in range(3): np.add.at(vn, f[:, k], fn)
    vn /= np.linalg.norm(vn, axis=1, keepdims=True)
    yy, xx = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing='ij')
    dc = np.stack([(xx - principal[0]) / focal[0], (yy - principal[1]) / focal[1], np.ones_like(xx)], -1).reshape(-1, 3)
    o, d = -R.T @ t, dc @ R                       # world-frame origin and directions (d = R^T dc)
    a, e1, e2 = v[f[:, 0]], v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]
    p = np.cross(d[:, None], e2[None])            # (P,F,3)
    det = (p * e1[None]).sum(-1)
    s = o - a                                     # (F,3)
    inv = 1 / np.where(np.abs(det) < 1e-18, np.nan, det)
    b1 = (p * s[None]).sum(-1) * inv
    q = np.cross(s, e1)                           # (F,3)
    b2 = (d @ q.T) * inv
    tt = (e2 * q).sum(-1)[None] * inv
    hit = (b1 >= 0) & (b2 >= 0) & (b1 + b2 <= 1) & (tt > 0)
    tt = np.where(hit, tt, np.inf)
    k = tt.argmin(1); P = np.arange(len(d))
    ok = np.isfinite(tt[P, k])
    bb = np.stack([1 - b1[P, k] - b2[P, k], b1[P, k], b2[P, k]], -1)
    n = (vn[f[k]] * bb[..., None]).sum(1)
    n = n / np.linalg.norm(n, axis=1, keepdims=True) @ R.T
    n[~ok] = np.nan
    return n.reshape(H, W, 3)

@pytest.fixture(scope='module')
def head():
    return builtin_head(n_vertices=500, n_shape=8, n_expression=6)

def test_crop_follows_the_paper_formula():
    g = torch.Generator().manual_seed(3)
    cfg = SynthConfig()
    cam = sample_camera(5, cfg, g)
    pts = torch.randn(5, 68, 3, generator=g, dtype=torch.float64) * 0.05
    # hand-written pinhole in the original image
    Xc = pts @ cam.R.transpose(1, 2) + cam.t[:, None]
    uv = Xc[..., :2] / Xc[..., 2:] * cam.focal[:, None] + cam.principal[:, None]
    lo, hi = uv.min(1).values.numpy(), uv.max(1).values.numpy()
    side = np.max(hi - lo, 1) * 1.25
    corner = (lo + hi) / 2 - side[:, None] / 2
    box = deca_crop_box(uv, 1.25)
    np.testing.assert_allclose(box.numpy(), np.concatenate([corner, side[:, None]], 1), rtol=1e-12)
    crop = cam.crop(box, 256)
    np.testing.assert_allclose(crop.focal.numpy(), cam.focal.numpy() * 256 / side[:, None], rtol=1e-12)
    np.testing.assert_allclose(crop.principal.numpy(), (cam.principal.numpy() - corner) * 256 / side[:, None], rtol=1e-12)
    assert torch.equal(crop.R, cam.R) and torch.equal(crop.t, cam.t)
    uv2, _ = crop.project(pts)
    # the bounding box of the landmarks spans 256/alpha pixels along its longer side, centred in the crop
    ext = (uv2.max(1).values - uv2.min(1).values).max(-1).values
    np.testing.assert_allclose(ext.numpy(), 256 / 1.25, rtol=1e-9)
    np.testing.assert_allclose(((uv2.max(1).values + uv2.min(1).values) / 2).numpy(), 128, atol=1e-9)

def test_camera_distribution_moments():
    g = torch.Generator().manual_seed(0)
    cfg = SynthConfig()
    cam = sample_camera(40000, cfg, g, units=100.0)           # centimetres
    flip = torch.diag(torch.tensor([1., -1., -1.], dtype=torch.float64))
    eul = matrix_to_euler(flip @ cam.R)                        # degrees, same convention as euler_to_matrix
    np.testing.assert_allclose(eul.std(0).numpy(), [15, 20, 10], rtol=0.03)
    np.testing.assert_allclose(eul.mean(0).numpy(), 0, atol=0.5)
    np.testing.assert_allclose(cam.t[:, :2].std(0).numpy(), 2.0, rtol=0.03)                 # 0.02 m in cm
    np.testing.assert_allclose([cam.t[:, 2].mean().item(), cam.t[:, 2].std().item()], [100, 20], rtol=0.03)
    assert cam.t[:, 2].min() >= 30 - 1e-9

def test_batch_targets_match_an_independent_projection(head):
    ds = SyntheticFaces(head, SMALL, seed=5)
    b = ds.batch(7)
    assert isinstance(b, SynthBatch) and b.index == 7
    out = head.from_params(b.params)
    X = out.landmarks.double() @ b.params.camera_rotation.double().transpose(1, 2) + b.params.camera_translation.double()[:, None]
    uv = X[..., :2] / X[..., 2:] * b.params.focal.double()[:, None] + b.params.principal.double()[:, None]
    torch.testing.assert_close(b.landmarks.double(), uv, atol=1e-3, rtol=0)
    # the crop puts the landmark box at the centre, spanning S/alpha
    ext = (uv.max(1).values - uv.min(1).values).max(-1).values
    torch.testing.assert_close(ext, torch.full_like(ext, 48 / 1.25), atol=1e-3, rtol=0)
    # jaw 6D is the rotation of the axis-angle jaw
    torch.testing.assert_close(rotation_6d_to_matrix(b.jaw6d), axis_angle_to_matrix(b.params.jaw_pose), atol=1e-5, rtol=0)
    # normals: unit on covered pixels, zero outside, facing the camera (against the pixel's view ray)
    cov = b.mask[:, 0] >= 1
    assert torch.allclose(b.normal.norm(dim=1)[cov], torch.ones(1), atol=1e-4)
    assert (b.normal[:, :, b.mask[0, 0] == 0][0] == 0).all()
    # normals against ray casting: each covered pixel shows the camera-frame normal (area-weighted vertex normals,
    # interpolated) of the first triangle its centre ray hits. A real head shows some surfaces from inside (through the
    # open mouth, into the open neck), so "every normal faces the camera" is not the test; most of them do.
    for i in range(2):
        ref = torch.as_tensor(ray_cast_normals(out.vertices[i].double().numpy(), head.faces.numpy(), b.params.camera_rotation[i].double().numpy(),
                                               b.params.camera_translation[i].double().numpy(), b.params.focal[i].double().numpy(),
                                               b.params.principal[i].double().numpy(), 48, 48))
        hit = ~ref[..., 0].isnan()
        assert bool(hit[cov[i]].all()) and bool((b.normal[i][:, ~hit] == 0).all())
        cos = (ref[cov[i]] * b.normal[i].permute(1, 2, 0)[cov[i]].double()).sum(-1)
        assert cos.min() > 0.999, cos.min()
        assert (ref[cov[i]][:, 2] < 0).double().mean() > 0.95     # OpenCV frame: facing the camera is -z
    # face mask = union of the face labels, inside the head mask
    ids = [b.labels.index(k) for k in SMALL.face_regions]
    assert torch.equal(b.face_mask.bool(), torch.isin(b.segmentation, torch.tensor(ids)))
    assert (b.mask[b.face_mask.bool()] > 0).all() and (b.face_mask.sum((1, 2, 3)) > 20).all()
    assert b.uv.shape == (2, 2, 48, 48) and b.uv.min() >= 0 and b.uv.max() <= 1
    # corruptions are off by default: the input is the target itself
    assert torch.equal(b.input_normal, b.normal) and torch.equal(b.input_face_mask, b.face_mask)

def test_frontal_camera_sees_the_front(head):
    trimesh = pytest.importorskip('trimesh')
    cfg = SynthConfig(image_size=48, batch_size=1, rotation_std_deg=(0, 0, 0), translation_xy_std_m=0, translation_z_std_m=0,
                      shape_std=0, expression_std=0, blendshape_active=0, jaw_std_deg=(0, 0, 0), eyelid_std=0, principal_std=0)
    b = SyntheticFaces(head, cfg).batch(0)
    R = b.params.camera_rotation[0]
    torch.testing.assert_close(R, torch.diag(torch.tensor([1., -1., -1.])))
    # the neutral head: the rendered normal at the pixel of each face vertex that faces the camera is that vertex's own
    # normal (trimesh's area-weighted vertex normal) turned into the camera frame, i.e. it points back at the camera
    v = head.from_params(b.params).vertices[0].double()
    torch.testing.assert_close(v, head.v_template.double(), atol=1e-6, rtol=0)
    nv = torch.as_tensor(np.array(trimesh.Trimesh(v.numpy(), head.faces.numpy(), process=False).vertex_normals))
    front = head.regions['face'][nv[head.regions['face'], 2] > 0.95]
    assert len(front) > 10
    Xc = v[front] @ R.double().T + b.params.camera_translation.double()
    u = (Xc[:, :2] / Xc[:, 2:] * b.params.focal[0].double() + b.params.principal[0].double()).long()
    n = b.normal[0][:, u[:, 1], u[:, 0]].T.double()                    # (K,3) rendered at those pixels
    cos = (n * (nv[front] @ R.double().T)).sum(1)
    assert cos.median() > 0.95 and (cos > 0.8).float().mean() > 0.9, cos
    assert (n[:, 2] < -0.8).float().mean() > 0.9

def test_fixed_sets_are_bit_exact_and_seeds_differ(head):
    a = fixed_set(head, SMALL, n_batches=2, seed=11)
    b = fixed_set(head, SMALL, n_batches=2, seed=11)
    for x, y in zip(a, b):
        tx, ty = x.tensors(), y.tensors()
        assert tx.keys() == ty.keys() and all(torch.equal(tx[k], ty[k]) for k in tx)
    c = fixed_set(head, SMALL, n_batches=1, seed=12)
    assert not torch.equal(a[0].params.shape, c[0].params.shape)
    assert not torch.equal(a[0].params.shape, a[1].params.shape)

def test_stream_resume_ranks_and_dataloader(head):
    ds = SyntheticFaces(head, SMALL, seed=2)
    resumed = next(iter(SyntheticFaces(head, SMALL, seed=2, start=3)))
    assert resumed.index == 3 and torch.equal(resumed.params.shape, ds.batch(3).params.shape)
    it0 = SyntheticFaces(head, SMALL, seed=2, rank=0, world_size=2).indices()
    it1 = SyntheticFaces(head, SMALL, seed=2, rank=1, world_size=2).indices()
    i0, i1 = [next(it0) for _ in range(4)], [next(it1) for _ in range(4)]
    assert i0 == [0, 2, 4, 6] and i1 == [1, 3, 5, 7]
    dl = torch.utils.data.DataLoader(ds, batch_size=None, collate_fn=lambda x: x)
    first = next(iter(dl))
    assert torch.equal(first.normal, ds.batch(0).normal)

def test_corruptions_change_only_the_input(head):
    cfg = SynthConfig(image_size=48, batch_size=2, corruption=Corruption(blur_sigma=1.0, noise_std=0.05, bias_std=0.1, flatten=0.2, occluder_prob=1.0))
    clean, noisy = SyntheticFaces(head, SMALL, seed=4).batch(0), SyntheticFaces(head, cfg, seed=4).batch(0)
    assert torch.equal(clean.normal, noisy.normal) and torch.equal(clean.face_mask, noisy.face_mask)
    cov = clean.normal.abs().sum(1) > 0
    assert torch.allclose(noisy.input_normal.norm(dim=1)[cov], torch.ones(1), atol=1e-4)
    assert (noisy.input_normal[:, :, ~cov[0]][0] == 0).all()
    ang = torch.rad2deg(torch.acos((noisy.input_normal * clean.normal).sum(1)[cov].clamp(-1, 1)))
    assert 1 < ang.mean() < 45
    assert (noisy.input_face_mask <= noisy.face_mask).all()

def test_blur_keeps_a_constant_field_and_noise_statistics():
    n = torch.zeros(2, 3, 32, 32); n[:, 2] = -1
    m = torch.ones(2, 1, 32, 32)
    g = torch.Generator().manual_seed(0)
    x, mm = corrupt(n, m, Corruption(blur_sigma=2.0), g)
    torch.testing.assert_close(x, n) and torch.testing.assert_close(mm, m)
    x, _ = corrupt(n, m, Corruption(noise_std=0.01), g)
    # small noise then renormalisation: the tangential components keep std 0.01
    torch.testing.assert_close(x[:, :2].std(), torch.tensor(0.01), rtol=0.05, atol=0)

def test_units_follow_the_model(head):
    assert units_per_metre(head) == 1.0
    if not ICT.exists(): pytest.skip('ICT asset absent')
    from facebench.models.ict import load_ict
    ict = load_ict(str(ICT))
    assert units_per_metre(ict) == 100.0
    b = SyntheticFaces(ict, SynthConfig(image_size=48, batch_size=2), seed=0).batch(0)
    assert 30 < b.params.camera_translation[:, 2].min() and b.params.camera_translation[:, 2].max() < 200
    assert b.jaw6d.shape == (2, 0) and (b.face_mask.sum((1, 2, 3)) > 50).all()

def test_bad_input(head):
    with pytest.raises(InputError, match='image_size'): SynthConfig(image_size=0)
    with pytest.raises(InputError, match='3 entries'): SynthConfig(jaw_std_deg=(1, 2))
    with pytest.raises(InputError, match='face region'): SyntheticFaces(head, SynthConfig(face_regions=('face', 'beard')))
    with pytest.raises(InputError, match='MorphableModel'): SyntheticFaces(builtin_head_data(500))
    with pytest.raises(InputError, match='rank'): SyntheticFaces(head, rank=2, world_size=2)
    with pytest.raises(InputError, match='units'): units_per_metre(type('M', (), {'units': 'ft'})())

def test_throughput_is_positive(head):
    assert synth_throughput(head, SynthConfig(image_size=32, batch_size=2), n_batches=1) > 0
