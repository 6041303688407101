"""Temporal metrics on synthetic sequences with known motion, and the speed harness."""
import numpy as np
import pytest
import torch
from facebench.core import InputError
from facebench.render.raster import rasterize_screen
from facebench.metrics.temporal import jitter, acceleration, acceleration_error, warp, warping_error, flow_from_fragments
from facebench.metrics.speed import measure_speed, markdown_table, SpeedResult

def test_jitter_and_acceleration_vs_numpy():
    g = np.random.default_rng(0)
    x = g.normal(size=(9, 5, 3))
    ref = np.linalg.norm(x[3:] - 3 * x[2:-1] + 3 * x[1:-2] - x[:-3], axis=-1).mean()
    assert abs(float(jitter(torch.from_numpy(x))) - ref) < 1e-12
    assert abs(float(jitter(torch.from_numpy(x), fps=30)) - ref * 27000) < 1e-6
    acc = np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=-1).mean()
    assert abs(float(acceleration(torch.from_numpy(x))) - acc) < 1e-12
    y = x + 0.3                                                # a constant offset has the same acceleration
    assert float(acceleration_error(torch.from_numpy(y), torch.from_numpy(x))) < 1e-12
    with pytest.raises(InputError, match='at least 4'): jitter(torch.zeros(3, 2, 3))
    with pytest.raises(InputError, match='same shape'): acceleration_error(torch.zeros(5, 2, 3), torch.zeros(5, 3, 3))
    with pytest.raises(InputError, match='non-finite'): jitter(torch.full((5, 2, 3), float('nan')))

def test_warp_integer_shift_matches_roll():
    img = torch.rand(1, 3, 10, 12, dtype=torch.float64)
    flow = torch.zeros(1, 2, 10, 12, dtype=torch.float64); flow[:, 0] = 3; flow[:, 1] = -2
    w = warp(img, flow)
    # output(y, x) = img(y - 2, x + 3)
    torch.testing.assert_close(w[..., 2:, :9], img[..., :8, 3:])
    assert float(w[..., :2, :].abs().max()) == 0 and float(w[..., 9:].abs().max()) == 0

def test_flow_from_fragments_known_translation_and_warping_error():
    # a square of two triangles in screen space, moved by (dx, dy) = (3, 1) px: the flow is (3, 1) wherever it is seen
    sq = torch.tensor([[4., 4., 1.], [20., 4., 1.], [20., 16., 1.], [4., 16., 1.]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    shift = torch.tensor([3., 1., 0.], dtype=torch.float64)
    s0, s1 = sq[None], (sq + shift)[None]
    fr0 = rasterize_screen(s0, faces, (24, 32), perspective=False)
    fr1 = rasterize_screen(s1, faces, (24, 32), perspective=False)
    flow, occ = flow_from_fragments(fr0, s1, fr1.pix_to_face, faces)
    cov = fr0.pix_to_face[0] >= 0
    assert int(cov.sum()) > 100
    torch.testing.assert_close(flow[0, 0][cov], torch.full((int(cov.sum()),), 3.0, dtype=torch.float64))
    torch.testing.assert_close(flow[0, 1][cov], torch.full((int(cov.sum()),), 1.0, dtype=torch.float64))
    assert bool(occ[0, 0][~cov].all())
    # frames: a smooth ramp painted on the square (a function of the surface point), so warping is exact inside
    def paint(fr, s):
        uv = (fr.bary[..., None] * s[0, :, :2][faces[fr.pix_to_face.clamp_min(0)]]).sum(-2) - s[0, 0, :2]
        return (torch.sin(uv[..., 0] / 4) * torch.cos(uv[..., 1] / 5) * (fr.pix_to_face >= 0))[:, None]
    frames = torch.cat([paint(fr0, s0), paint(fr1, s1)])
    # bilinear sampling across the square's silhouette is not exact: mask the pixels next to it as well
    occ2 = occ.clone(); occ2[0, 0] = torch.nn.functional.max_pool2d(occ[:, :1], 3, 1, 1)[0, 0]
    e = warping_error(frames, flow, occ2)
    assert float(e) < 1e-3
    assert float(warping_error(frames, torch.zeros_like(flow), occ2)) > 10 * float(e)

def test_warping_error_errors():
    with pytest.raises(InputError, match='at least 2'): warping_error(torch.zeros(1, 3, 4, 4), torch.zeros(0, 2, 4, 4))
    with pytest.raises(InputError, match='flows'): warping_error(torch.zeros(3, 3, 4, 4), torch.zeros(3, 2, 4, 4))

def test_speed_harness_counts_and_table():
    calls = []
    res = measure_speed(lambda x: calls.append(x.shape[0]), lambda b: torch.zeros(b, 2), batch_sizes=(1, 4), warmup=2, repeats=3,
                        dtype=torch.float32, name='noop')
    assert calls == [1] * 5 + [4] * 5
    assert [r.batch_size for r in res] == [1, 4] and all(isinstance(r, SpeedResult) for r in res)
    assert res[1].items_per_s == pytest.approx(4 / res[1].median_s)
    md = markdown_table(res)
    assert md.count('\n') == 3 and '| noop | 4 |' in md and 'float32' in md
    with pytest.raises(InputError): measure_speed(lambda x: x, lambda b: torch.zeros(b), repeats=0)
    with pytest.raises(InputError): markdown_table([])
