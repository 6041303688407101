"""Render passes against independent references: pinhole landmarks, ray-cast visibility/regions, UV/texture,
textbook SH constants, height-field normals, PNG round trip, and a pose-recovery optimisation."""
import math
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from facebench.core import InputError
from facebench.render.cameras import PerspectiveCamera
from facebench.render.raster import sphere_mesh, rasterize, vertex_normals
from facebench.render.render import (render, sh_shading, SH_CONSTANTS, normal_to_rgb, rgb_to_normal, save_normal_map,
                                     load_normal_map, rasterize_uv, uv_maps, displacement_normals, sample_texture, grid_faces)
from facebench.rotations import axis_angle_to_matrix

D = torch.float64

def _scene(size=64):
    v, f = sphere_mesh(32, 64, dtype=D)
    cam = PerspectiveCamera.look_at(torch.tensor([[0.5, 0.4, 3.2]], dtype=D), torch.zeros(1, 3, dtype=D),
                                    focal=torch.tensor([[80., 82.]], dtype=D) * size / 64, image_size=(size, size))
    return v[None], f, cam

def test_normal_mask_depth_passes():
    v, f, cam = _scene()
    r = render(v, cam, ('normal', 'normal_world', 'mask', 'depth'), faces=f)
    m = r.fragments.mask[:, None]
    for n in (r.normal, r.normal_world):
        assert torch.allclose(n.norm(dim=1)[m[:, 0]], torch.ones(1, dtype=D), atol=1e-9) and (n * ~m == 0).all()
    # camera normal = R @ world normal; visible normals face the camera (negative z in OpenCV)
    assert torch.allclose(r.normal, torch.einsum('ij,bjhw->bihw', cam.R[0], r.normal_world))
    assert (r.normal[:, 2][m[:, 0]] < 1e-6).all()
    assert ((r.mask - m.to(D)).abs() <= 1).all() and (r.mask[m] > 0).all() and torch.equal(r.depth, r.fragments.depth[:, None])

def test_landmarks_are_pinhole_projections_with_visibility():
    v, f, cam = _scene()
    lmk = torch.tensor([[[0., 0., 1.], [0., 0., -1.], [0.6, 0.0, 0.8], [5., 5., 0.]]], dtype=D)
    r = render(v, cam, 'landmarks', faces=f, landmarks=lmk)
    Xc = lmk[0] @ cam.R[0].T + cam.t[0]
    uv = Xc[:, :2] / Xc[:, 2:] * cam.focal[0] + cam.principal[0]
    assert torch.allclose(r.landmarks[0], uv, atol=1e-9)
    # front points visible, the back point hidden, the far-away point outside the image
    assert r.landmarks_visible[0].tolist() == [True, False, True, False]
    # a mesh's other landmark schemes (ModelOutput.landmark_sets) go through the same pinhole and visibility test
    from types import SimpleNamespace
    mesh = SimpleNamespace(vertices=v, faces=f, landmarks=lmk, landmark_sets={'extra': lmk[:, [2, 1]]})
    r2 = render(mesh, cam, 'landmarks')
    assert torch.allclose(r2.landmark_sets['extra'][0], uv[[2, 1]], atol=1e-9)
    assert r2.landmark_sets_visible['extra'][0].tolist() == [True, False] and r.landmark_sets == {}

def test_segmentation_follows_vertex_regions():
    v, f, cam = _scene()
    regions = {'face': torch.nonzero(v[0, :, 0] < 0).squeeze(1), 'ears': torch.nonzero(v[0, :, 0] >= 0).squeeze(1)}
    r = render(v, cam, ('segmentation', 'position'), faces=f, regions=regions)
    assert r.labels[0] == 'background' and 'face' in r.labels and 'ears' in r.labels
    x = r.position[0, 0]
    m = r.fragments.mask[0]
    seg = r.segmentation[0, 0]
    assert (seg[~m] == 0).all()
    assert (seg[m & (x < -0.08)] == r.labels.index('face')).all() and (seg[m & (x > 0.08)] == r.labels.index('ears')).all()
    assert torch.equal(r.region_mask('face')[0, 0].bool(), seg == r.labels.index('face'))
    with pytest.raises(InputError, match='unknown region'): r.region_mask('hair')

def test_uv_and_texture_sampling():
    v, f, cam = _scene()
    uv = torch.stack([(v[0, :, 0] + 1) / 2, (v[0, :, 1] + 1) / 2], -1)
    S = 256   # texture whose colour is its own (u, v): sampling must give back the interpolated UV
    u_c = (torch.arange(S, dtype=D) + 0.5) / S
    tex = torch.stack([u_c[None, :].expand(S, S), u_c.flip(0)[:, None].expand(S, S)])[None]
    r = render(v, cam, ('uv', 'texture'), faces=f, uv=uv, faces_uv=f, texture=tex)
    m = r.fragments.mask[:, None].expand(-1, 2, -1, -1)
    assert (r.texture[m] - r.uv[m]).abs().max() < 1e-9 + 1.0 / S
    # uv equals the planar map of the interpolated position
    r2 = render(v, cam, 'position', faces=f)
    assert torch.allclose(r.uv[m], ((r2.position[:, :2] + 1) / 2)[m], atol=1e-9)

def test_sh_constants_match_textbook_real_sh():
    # real SH normalisations Y00, Y1m, Y2-2, Y22, Y20 and Ramamoorthi-Hanrahan A1 = 2pi/3, A2 = pi/4 (DECA: A0 = 1)
    Y = [0.282095, 0.488603, 0.488603, 0.488603, 1.092548, 1.092548, 1.092548, 0.546274, 0.315392]
    A = [1] + [2 * math.pi / 3] * 3 + [math.pi / 4] * 5
    np.testing.assert_allclose(SH_CONSTANTS, np.array(Y) * A, rtol=1e-5)
    n = F.normalize(torch.randn(2, 3, 4, 5, dtype=D), dim=1)
    sh = torch.randn(2, 9, 3, dtype=D)
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    basis = [torch.ones_like(x), x, y, z, x * y, x * z, y * z, x * x - y * y, 3 * z * z - 1]
    ref = sum(sh[:, k, :, None, None] * (Y[k] * A[k] * basis[k])[:, None] for k in range(9))
    assert torch.allclose(sh_shading(n, sh), ref, atol=1e-5)

def test_image_pass_is_albedo_times_shading():
    v, f, cam = _scene(32)
    uv = torch.stack([(v[0, :, 0] + 1) / 2, (v[0, :, 1] + 1) / 2], -1)
    tex = torch.rand(1, 3, 16, 16, dtype=D)
    sh = torch.randn(1, 9, 3, dtype=D)
    r = render(v, cam, ('image', 'normal_world'), faces=f, uv=uv, faces_uv=f, texture=tex, sh=sh)
    assert torch.allclose(r.image, r.texture * sh_shading(r.normal_world, sh) * r.fragments.mask[:, None])

def test_normal_png_round_trip(tmp_path):
    v, f, cam = _scene()
    r = render(v, cam, 'normal', faces=f)
    p = save_normal_map(tmp_path / 'n.png', r.normal[0], r.fragments.mask[0])
    n, m = load_normal_map(p, dtype=D)
    assert torch.equal(m[0], r.fragments.mask[0])
    ang = torch.rad2deg(torch.acos((n * r.normal[0]).sum(0)[m[0]].clamp(-1, 1)))
    assert ang.max() < 1.0
    # the usual look: a normal facing the camera is (0.5, 0.5, 1)
    rgb = normal_to_rgb(torch.tensor([0., 0., -1.]).view(1, 3, 1, 1))
    assert torch.allclose(rgb.flatten(), torch.tensor([0.5, 0.5, 1.0]))
    assert torch.allclose(rgb_to_normal(rgb).flatten(), torch.tensor([0., 0., -1.]))

def _plane(n=24):
    "A flat square grid in z = 0 of side 1 with uv = (x, y)."
    g = torch.linspace(0, 1, n, dtype=D)
    yy, xx = torch.meshgrid(g, g, indexing='ij')
    v = torch.stack([xx, yy, torch.zeros_like(xx)], -1).reshape(-1, 3)
    f = grid_faces(n, n).flip(1)         # +z normals
    return v, f

def test_rasterize_uv_and_uv_maps_on_a_plane():
    v, f = _plane()
    uv = v[:, :2].clone()
    uvr = rasterize_uv(uv=uv, faces_uv=f, size=32)
    pos, nrm = uv_maps(uvr, v[None], f)
    c = (torch.arange(32, dtype=D) + 0.5) / 32
    inner = uvr.mask[0, 0]
    assert inner.float().mean() > 0.99
    assert torch.allclose(pos[0, 0][inner], c[None, :].expand(32, 32)[inner], atol=1e-9)       # x = u
    assert torch.allclose(pos[0, 1][inner], c.flip(0)[:, None].expand(32, 32)[inner], atol=1e-9)  # y = v, row 0 = v of 1
    assert torch.allclose(nrm[0, 2][inner], torch.ones(1, dtype=D))

def test_displacement_normals_match_height_field_normals():
    S = 128
    c = (torch.arange(S, dtype=D) + 0.5) / S
    X, Y = c[None, :].expand(S, S), c.flip(0)[:, None].expand(S, S)
    pos = torch.stack([X, Y, torch.zeros_like(X)])[None]
    nrm = torch.zeros_like(pos); nrm[:, 2] = 1
    a, k = 0.01, 2 * math.pi * 3
    h = a * torch.sin(k * X) * torch.cos(k * Y)
    nd = displacement_normals(pos, nrm, h[None, None])
    ref = F.normalize(torch.stack([-a * k * torch.cos(k * X) * torch.cos(k * Y), a * k * torch.sin(k * X) * torch.sin(k * Y),
                                   torch.ones_like(X)]), dim=0)
    ang = torch.rad2deg(torch.acos((nd[0] * ref).sum(0).clamp(-1, 1)))[2:-2, 2:-2]
    print(f"displacement normals: max {ang.max():.3f} deg")
    assert ang.max() < 1.0

def test_normal_detail_pass_with_zero_displacement_is_the_coarse_normal():
    class M: pass
    v, f = _plane(32)
    v = v - torch.tensor([0.5, 0.5, 0.], dtype=D)
    v[:, 2] = 0.3 * torch.exp(-8 * (v[:, :2] ** 2).sum(-1))               # a smooth bump facing +z
    model = M(); model.uv = v[:, :2] + 0.5; model.faces_uv = f
    cam = PerspectiveCamera.look_at(torch.tensor([[0.2, 0.1, 2.5]], dtype=D), torch.zeros(1, 3, dtype=D),
                                    focal=torch.tensor([[90., 90.]], dtype=D), image_size=(48, 48))
    r = render(v[None], cam, ('normal', 'normal_detail'), faces=f, model=model, displacement=torch.zeros(1, 1, 128, 128, dtype=D))
    m = r.fragments.mask[0]
    ang = torch.rad2deg(torch.acos((r.normal[0] * r.normal_detail[0]).sum(0)[m].clamp(-1, 1)))
    print(f"normal_detail vs coarse: median {ang.median():.3f} deg")
    assert m.sum() > 500 and ang.median() < 1.0

def test_pose_recovery_from_normal_map_and_mask():
    v, f = sphere_mesh(16, 32, dtype=D)
    v = v * torch.tensor([0.8, 1.1, 0.6], dtype=D) + torch.tensor([0., 0., 0.3], dtype=D) * (v[:, 2:] > 0.5)  # a nose
    def camera(aa, t):
        return PerspectiveCamera(axis_angle_to_matrix(aa), t, torch.tensor([[70., 70.]], dtype=D), torch.tensor([[24., 24.]], dtype=D), (48, 48))
    aa_true = torch.tensor([[0.1, 3.14159 - 0.2, 0.05]], dtype=D); t_true = torch.tensor([[0.02, -0.03, 3.0]], dtype=D)
    tgt = render(v[None], camera(aa_true, t_true), ('normal', 'mask'), faces=f)
    aa = (aa_true + torch.tensor([[0.08, -0.1, 0.06]], dtype=D)).requires_grad_(True)
    t = (t_true + torch.tensor([[0.08, 0.06, 0.2]], dtype=D)).requires_grad_(True)
    opt = torch.optim.Adam([aa, t], lr=0.01)
    for _ in range(200):
        r = render(v[None], camera(aa, t), ('normal', 'mask'), faces=f)
        loss = (r.normal - tgt.normal).abs().mean() + 10 * (r.mask - tgt.mask).abs().mean()
        opt.zero_grad(); loss.backward(); opt.step()
    err_r = (aa - aa_true).norm().item(); err_t = (t - t_true).norm().item()
    print(f"pose recovery: rotation err {err_r:.4f} rad, translation err {err_t:.4f}")
    assert err_r < 0.02 and err_t < 0.02

def test_render_input_errors():
    v, f, cam = _scene(16)
    with pytest.raises(InputError, match='unknown pass'): render(v, cam, ('normals',), faces=f)
    with pytest.raises(InputError, match='faces'): render(v, cam, 'normal')
    with pytest.raises(InputError, match='regions'): render(v, cam, 'segmentation', faces=f)
    with pytest.raises(InputError, match='landmarks'): render(v, cam, 'landmarks', faces=f)
    with pytest.raises(InputError, match='uv'): render(v, cam, 'uv', faces=f)
    with pytest.raises(InputError, match='texture'): render(v, cam, 'texture', faces=f, uv=v[0, :, :2], faces_uv=f)
    with pytest.raises(InputError, match='sh'): render(v, cam, 'shading', faces=f)
    with pytest.raises(InputError, match='sh'): sh_shading(torch.zeros(1, 3, 2, 2), torch.zeros(1, 4, 3))
    with pytest.raises(InputError, match='mesh'): render([1, 2], cam, faces=f)
    with pytest.raises(InputError, match='convention'): normal_to_rgb(torch.zeros(1, 3, 2, 2), convention='dx')
    with pytest.raises(FileNotFoundError): load_normal_map('/nonexistent/n.png')
    with pytest.raises(InputError, match='size'): rasterize_uv(uv=v[0, :, :2], faces_uv=f, size=0)
