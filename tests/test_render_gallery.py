"""Viewing helpers of facebench.render.gallery: SH light against the Legendre expansion of the clamped cosine (scipy),
the DECA-cropped face camera, textures, label colours, landmark dots, preview images and the pose/light explorer."""
import math
import numpy as np
import pytest
import torch
from facebench.core import InputError
from facebench.render import (sh_light, sh_shading, face_camera, checker_texture, uv_texture, segmentation_to_rgb,
                              draw_points, preview_images, render_explorer, GALLERY_PASSES, SEGMENTATION_COLORS,
                              deca_crop_box)

@pytest.fixture(scope='module')
def head():
    from facebench.models.builtin import builtin_head
    return builtin_head(n_vertices=1500)

def test_sh_light_is_the_order_2_clamped_cosine():
    from scipy.integrate import quad
    from scipy.special import eval_legendre
    # Legendre coefficients of max(0, t): c_l = (2l+1)/2 * int_0^1 t P_l(t) dt  (independent of the 1/4, 1/2, 5/16 in the code)
    c = [(2 * l + 1) / 2 * quad(lambda t: t * eval_legendre(l, t), 0, 1)[0] for l in range(3)]
    rng = np.random.default_rng(0)
    d = rng.normal(size=(4, 3)); d /= np.linalg.norm(d, axis=1, keepdims=True)
    amb, k = 0.3, 0.9
    sh = sh_light(torch.tensor(d), strength=k, ambient=amb, color=(1.0, 0.5, 2.0), dtype=torch.float64)
    assert sh.shape == (4, 9, 3)
    n = rng.normal(size=(4, 50, 3)); n /= np.linalg.norm(n, axis=-1, keepdims=True)
    got = sh_shading(torch.tensor(n).permute(0, 2, 1)[..., None], sh)[..., 0]        # (4,3,50)
    t = (n * d[:, None]).sum(-1)
    ref = amb + k * sum(c[l] * eval_legendre(l, t) for l in range(3))                  # (4,50)
    for ch, col in enumerate((1.0, 0.5, 2.0)):
        np.testing.assert_allclose(got[:, ch].numpy(), col * ref, atol=1e-10)
    assert sh_light(batch_size=3).shape == (3, 9, 3)
    with pytest.raises(InputError, match='direction'): sh_light((0., 0., 0.))

def test_face_camera_frames_the_landmarks_like_deca(head):
    out = head(expression=torch.rand(2, head.n_expression) * 0.5, batch_size=2)
    S, alpha = 128, 1.25
    cam = face_camera(out.vertices, out.landmarks, S, yaw=torch.tensor([-20., 30.]), pitch=10.0, alpha=alpha)
    uv, z = cam.project(out.landmarks)
    lo, hi = uv.amin(1), uv.amax(1)
    side = (hi - lo).amax(-1)
    np.testing.assert_allclose(side.numpy(), S / alpha, rtol=1e-4)                   # box side = max(w, h) * alpha -> S
    np.testing.assert_allclose(((lo + hi) / 2).numpy(), S / 2, atol=1e-3)            # centred
    assert (z > 0).all()
    # yaw moves the camera to the head's left (+x in the model frame): the camera centre has x > 0 for yaw > 0
    centre = -(cam.R.transpose(1, 2) @ cam.t[..., None])[..., 0]
    assert centre[0, 0] < 0 < centre[1, 0] and (centre[:, 1] > out.vertices.mean(1)[:, 1]).all()
    full = face_camera(out.vertices, None, S, crop=False)
    assert full.image_size == (S, S) and torch.allclose(full.principal, torch.full((2, 2), S / 2.0))

def test_textures_and_label_colours():
    t = checker_texture(64, 4)
    assert t.shape == (1, 3, 64, 64)
    assert torch.allclose(t[0, :, 0, 0], torch.tensor(0.85)) and torch.allclose(t[0, :, 0, 16], torch.tensor(0.35))
    assert torch.allclose(t[0, :, 16, 16], torch.tensor(0.85))
    u = uv_texture(32, 4)
    assert u[0, 0, 5, 31] > u[0, 0, 5, 0] and u[0, 1, 0, 5] > u[0, 1, 31, 5]        # red grows with u, green with v (up)
    seg = torch.tensor([[[[0, 1], [2, len(SEGMENTATION_COLORS) + 3]]]])
    rgb = segmentation_to_rgb(seg)
    assert rgb.shape == (1, 3, 2, 2) and (rgb[0, :, 0, 0] == 0).all()
    assert torch.allclose(rgb[0, :, 1, 0], torch.tensor(SEGMENTATION_COLORS[2], dtype=torch.float32))
    assert rgb[0, :, 1, 1].sum() > 0                                                  # labels past the palette still get a colour

def test_draw_points_paints_discs():
    img = torch.zeros(1, 3, 20, 20)
    out = draw_points(img, torch.tensor([[[5.5, 5.5], [14.5, 10.5]]]), torch.tensor([[True, False]]), radius=1.0)
    assert torch.equal(out[0, :, 5, 5], torch.tensor([0.1, 1.0, 0.2]))                 # visible: green
    assert torch.equal(out[0, :, 10, 14], torch.tensor([1.0, 0.15, 0.1]))              # occluded: red
    assert (out[0].sum(0) > 0).sum() == 10 and (img == 0).all()                        # 5 px per disc, input untouched

def test_preview_images_all_passes(head):
    out = head.neutral()
    cam = face_camera(out.vertices, out.landmarks, 96, yaw=20)
    imgs = preview_images(out, cam, head)
    assert set(imgs) == set(GALLERY_PASSES)
    m = imgs['mask'][0, 0] > 0.5
    for k, v in imgs.items():
        assert v.shape == (1, 3, 96, 96) and v.min() >= 0 and v.max() <= 1, k
        if k not in ('mask', 'landmarks'): assert (v[0][:, ~(imgs['mask'][0, 0] > 0)] == 0).all(), k   # background black
    assert torch.unique(imgs['segmentation'][0].reshape(3, -1), dim=1).shape[1] >= 5      # several regions in view
    assert (imgs['landmarks'] != imgs['shaded']).any()
    with pytest.raises(InputError, match='unknown preview pass'): preview_images(out, cam, head, passes=('colour',))

def test_render_explorer_sliders_drive_the_image(head):
    ui = render_explorer(head, image_size=64, passes=('mask', 'normal', 'shaded'))
    assert ui.image.shape == (64, 64, 3) and ui.image.dtype == np.uint8
    mask0 = ui.image.copy()
    assert set(np.unique(mask0)) <= {0, 255} or ((mask0 > 0) & (mask0 < 255)).mean() < 0.05
    ui.sliders['yaw'].value = 25; m_right = ui.image.copy()
    ui.sliders['yaw'].value = -25; m_left = ui.image.copy()
    assert (m_right != mask0).any() and (m_left[:, ::-1] != m_right).any(-1).mean() < 0.02   # mirror images
    area = (m_left[..., 0] > 127).mean()
    ui.sliders['distance'].value = 6.0
    assert (ui.image[..., 0] > 127).mean() < 0.5 * area                                # farther: smaller
    ui.pass_selector.value = 'shaded'
    ui.sliders['light_strength'].value = 0.0; ui.sliders['ambient'].value = 1.0
    inside = ui.image.sum(-1) > 0
    assert np.abs(ui.image[inside].astype(int) - round(0.75 * 255)).max() <= 1          # flat albedo
    ui.sliders['light_strength'].value = 1.0; ui.sliders['ambient'].value = 0.2
    ui.sliders['light_azimuth'].value = 90; ui.sliders['light_elevation'].value = 0
    ui.sliders['yaw'].value = 0; ui.sliders['distance'].value = 3.0
    g = ui.image[..., 0].astype(float)
    cols = np.nonzero(g.sum(0))[0]
    mid = (cols.min() + cols.max()) // 2
    left, right = g[:, cols.min():mid], g[:, mid:cols.max() + 1]
    assert right[right > 0].mean() > left[left > 0].mean() + 20                          # light from +x: image right lit
    with pytest.raises(InputError, match='passes'): render_explorer(head, passes=('colour',))
    with pytest.raises(InputError, match='MorphableModel'): render_explorer('flame')
