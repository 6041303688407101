"""Cameras: pinhole formula, pytorch3d/OpenGL conversions, DECA orthographic formula, DECA crop (a crop of a render
equals the render with the cropped camera), and input errors."""
import math
import numpy as np
import pytest
import torch
from facebench.core import InputError
from facebench.render.cameras import (PerspectiveCamera, OrthographicCamera, deca_crop_box, crop_camera, crop_images)
from facebench.render.raster import rasterize, sphere_mesh, interpolate, vertex_normals
from facebench.rotations import axis_angle_to_matrix

def _rand_cam(B=3, size=(120, 160), seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=g, dtype=dtype)
    R = axis_angle_to_matrix(0.5 * (r(B, 3) - 0.5))
    t = torch.cat([0.1 * (r(B, 2) - 0.5), 1 + r(B, 1)], 1)
    return PerspectiveCamera(R, t, 150 + 100 * r(B, 2), torch.tensor([size[1] / 2, size[0] / 2], dtype=dtype) + 10 * (r(B, 2) - 0.5), size)

def test_pinhole_formula_and_K():
    cam = _rand_cam()
    X = torch.randn(3, 7, 3, dtype=torch.float64) * 0.1
    uv, z = cam.project(X)
    Xc = torch.einsum('bij,bnj->bni', cam.R, X) + cam.t[:, None]
    hom = torch.einsum('bij,bnj->bni', cam.K, Xc)
    assert torch.allclose(uv, hom[..., :2] / hom[..., 2:], atol=1e-10) and torch.allclose(z, Xc[..., 2])

def test_pytorch3d_conversion_projects_like_pytorch3d_formulas_and_round_trips():
    cam = _rand_cam()
    X = torch.randn(3, 11, 3, dtype=torch.float64) * 0.1
    p = cam.to_pytorch3d()
    Xv = X @ p['R'] + p['T'][:, None]                 # pytorch3d: row vectors
    ndc = Xv[..., :2] / Xv[..., 2:] * p['focal_length'][:, None] + p['principal_point'][:, None]
    H, W = cam.image_size; s = min(H, W) / 2
    uv = torch.stack([W / 2 - s * ndc[..., 0], H / 2 - s * ndc[..., 1]], -1)   # NDC +x left, +y up
    assert torch.allclose(uv, cam.project(X)[0], atol=1e-9)
    back = PerspectiveCamera.from_pytorch3d(p['R'], p['T'], p['focal_length'], p['principal_point'], cam.image_size)
    for k in ('R', 't', 'focal', 'principal'): assert torch.allclose(getattr(back, k), getattr(cam, k), atol=1e-12)

def test_opengl_conversion_projects_like_opengl_and_round_trips():
    cam = _rand_cam()
    X = torch.randn(3, 11, 3, dtype=torch.float64) * 0.1
    V, P = cam.to_opengl(0.1, 50.0)
    clip = torch.cat([X, torch.ones(3, 11, 1, dtype=X.dtype)], -1) @ (P @ V).transpose(1, 2)
    ndc = clip[..., :3] / clip[..., 3:]
    H, W = cam.image_size
    uv = torch.stack([(ndc[..., 0] + 1) * W / 2, (1 - ndc[..., 1]) * H / 2], -1)
    assert torch.allclose(uv, cam.project(X)[0], atol=1e-9)
    z = cam.project(X)[1]                         # OpenGL depth: ndc_z maps [near, far] to [-1, 1]
    assert torch.allclose(ndc[..., 2], (50.1 / 49.9) - (2 * 50 * 0.1 / 49.9) / z, atol=1e-9)
    back = PerspectiveCamera.from_opengl(V, P, cam.image_size)
    for k in ('R', 't', 'focal', 'principal'): assert torch.allclose(getattr(back, k), getattr(cam, k), atol=1e-12)

def test_look_at_puts_target_on_principal_point_and_up_upwards():
    eye = torch.tensor([[1., 2., 3.]], dtype=torch.float64)
    cam = PerspectiveCamera.look_at(eye, torch.zeros(1, 3, dtype=torch.float64), image_size=(64, 64))
    assert torch.allclose(cam.R @ cam.R.transpose(1, 2), torch.eye(3, dtype=torch.float64)) and torch.det(cam.R).item() > 0
    uv, z = cam.project(torch.tensor([[[0., 0., 0.], [0., 0.1, 0.]]], dtype=torch.float64))
    assert torch.allclose(uv[0, 0], torch.tensor([32., 32.], dtype=torch.float64)) and abs(z[0, 0] - math.sqrt(14)) < 1e-12
    assert uv[0, 1, 1] < 32

def test_deca_orthographic_formula_random_inputs():
    g = torch.Generator().manual_seed(1)
    cam = torch.rand(4, 3, generator=g, dtype=torch.float64) * torch.tensor([10., 0.2, 0.2]) + torch.tensor([3., -0.1, -0.1])
    X = torch.randn(4, 9, 3, generator=g, dtype=torch.float64) * 0.1
    # DECA util.batch_orth_proj, then `[:, :, 1:] = -...` and pixel = (x + 1) * size / 2
    Xt = torch.cat([X[..., :2] + cam[:, None, 1:], X[..., 2:]], -1) * cam[:, None, :1]
    Xt = torch.cat([Xt[..., :1], -Xt[..., 1:]], -1)
    uv_ref = (Xt[..., :2] + 1) * 224 / 2
    oc = OrthographicCamera.from_deca(cam, (224, 224))
    uv, depth = oc.project(X)
    assert torch.allclose(uv, uv_ref, atol=1e-10) and torch.allclose(depth, Xt[..., 2], atol=1e-12)

def test_deca_crop_box_formula():
    lmk = torch.tensor([[[10., 20.], [50., 30.], [30., 90.]]])
    box = deca_crop_box(lmk, alpha=1.2)
    side = max(40, 70) * 1.2
    assert torch.allclose(box, torch.tensor([[30 - side / 2, 55 - side / 2, side]]))

def _render_normals(v, f, cam):
    fr = rasterize(v, f, cam)
    return fr.pix_to_face, interpolate(vertex_normals(v, f), fr, f)

@pytest.mark.parametrize('k', [1, 3])
def test_crop_of_a_render_equals_render_with_cropped_camera(k):
    # integer box corner and side = k * out_size (k odd): cropped pixel centres are pixel centres of the full render
    sv, sf = sphere_mesh(24, 48, dtype=torch.float64)
    v = sv[None] * torch.tensor([1.0, 1.3, 0.9], dtype=torch.float64)
    cam = PerspectiveCamera.look_at(torch.tensor([[0.4, 0.3, 3.5]], dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64),
                                    focal=torch.tensor([[60. * k, 62. * k]], dtype=torch.float64),
                                    principal=torch.tensor([[31.3 * k, 29.8 * k]], dtype=torch.float64), image_size=(64 * k, 64 * k))
    out = 40
    box = torch.tensor([[12. * k, 7. * k, out * k]], dtype=torch.float64)
    p_full, n_full = _render_normals(v, sf, cam)
    p_crop, n_crop = _render_normals(v, sf, crop_camera(cam, box, out))
    x0, y0, o = 12 * k, 7 * k, (k - 1) // 2
    ref_p = p_full[:, y0 + o:y0 + out * k:k, x0 + o:x0 + out * k:k]
    assert (ref_p == p_crop).float().mean() >= 0.995
    same = ref_p == p_crop
    assert torch.allclose(n_full[:, y0 + o:y0 + out * k:k, x0 + o:x0 + out * k:k][same], n_crop[same], atol=1e-9)
    if k == 1:   # crop_images resamples exactly at pixel centres
        img = crop_images(n_full.permute(0, 3, 1, 2), box, out).permute(0, 2, 3, 1)
        assert torch.allclose(img[same], n_crop[same], atol=1e-9)

def test_orthographic_crop_equals_render_with_cropped_camera():
    sv, sf = sphere_mesh(24, 48, dtype=torch.float64)
    T = lambda x: torch.tensor([x], dtype=torch.float64)
    cam = OrthographicCamera(T(0.8), T(0.05), T(-0.1), (64, 64))
    box = T([10., 14., 40.])
    p_full = rasterize(sv[None], sf, cam).pix_to_face
    p_crop = rasterize(sv[None], sf, crop_camera(cam, box, 40)).pix_to_face
    assert (p_full[:, 14:54, 10:50] == p_crop).float().mean() >= 0.995

def test_camera_input_errors():
    cam = _rand_cam(B=2)
    with pytest.raises(InputError, match='focal'): PerspectiveCamera(cam.R, cam.t, torch.zeros_like(cam.focal), cam.principal, (10, 10))
    with pytest.raises(InputError, match='image_size'): PerspectiveCamera(cam.R, cam.t, cam.focal, cam.principal, (0, 10))
    with pytest.raises(InputError, match='image_size'): PerspectiveCamera(cam.R, cam.t, cam.focal, cam.principal, (10, -5))
    with pytest.raises(InputError, match='image_size'): PerspectiveCamera(cam.R, cam.t, cam.focal, cam.principal, (10.5, 10))
    with pytest.raises(InputError, match='camera.t'): PerspectiveCamera(cam.R, cam.t[:1], cam.focal, cam.principal, (10, 10))
    with pytest.raises(InputError, match='camera.R'): PerspectiveCamera(cam.R[:, :2], cam.t, cam.focal, cam.principal, (10, 10))
    with pytest.raises(InputError, match='non-finite'): PerspectiveCamera(cam.R * float('nan'), cam.t, cam.focal, cam.principal, (10, 10))
    with pytest.raises(InputError, match='points'): cam.project(torch.zeros(3, 4, 3, dtype=torch.float64))
    with pytest.raises(InputError, match='scale'): OrthographicCamera(torch.zeros(1), torch.zeros(1), torch.zeros(1), (8, 8))
    with pytest.raises(InputError, match='box'): crop_camera(cam, torch.tensor([[0., 0., 0.]] * 2, dtype=torch.float64), 32)
    with pytest.raises(InputError, match='out_size'): crop_camera(cam, torch.tensor([[0., 0., 5.]] * 2, dtype=torch.float64), 0)
    with pytest.raises(InputError, match='landmarks'): deca_crop_box(torch.zeros(1, 0, 2))
    with pytest.raises(InputError, match='batch-1'): cam.expand(4)
