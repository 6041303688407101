"Viewers: vertex normals vs trimesh, plotly figures, standalone HTML, image grids, the preview renderer, the explorer."
import base64, io, re
from pathlib import Path
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from facebench.core import InputError
from facebench.io import Mesh
from facebench.render.raster import vertex_normals   # the viewers' normals come from the renderer
from facebench.viz import (mesh_figure, mesh_traces, compare_figure, save_html, image_grid, save_figure,
                           render_normals_preview, render_shaded_preview, model_explorer)

trimesh = pytest.importorskip('trimesh')


def icosphere(sub=3):
    s = trimesh.creation.icosphere(subdivisions=sub)
    return s, torch.from_numpy(s.vertices), torch.from_numpy(s.faces)


def square(z=0.0, half=1.0):
    v = torch.tensor([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]], dtype=torch.float64)
    return v, torch.tensor([[0, 1, 2], [0, 2, 3]])


# ------------------------------------------------------------------------------------------------ vertex normals
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_vertex_normals_vs_trimesh(dtype):
    rng = np.random.default_rng(0)
    s = trimesh.creation.icosphere(subdivisions=2)
    v = s.vertices * rng.uniform(0.5, 2.0, (1, 3)) + rng.normal(0, 0.05, s.vertices.shape)   # bumpy ellipsoid
    tm = trimesh.Trimesh(v, s.faces, process=False)
    ref = trimesh.geometry.mean_vertex_normals(len(v), tm.faces, tm.face_normals * tm.area_faces[:, None])   # area weighted
    got = vertex_normals(torch.tensor(v, dtype=dtype)[None], torch.from_numpy(tm.faces))[0]
    np.testing.assert_allclose(got.double().numpy(), ref, atol=1e-5 if dtype == torch.float32 else 1e-12)
    # trimesh's default (angle-weighted) normals are close on a smooth ellipsoid
    sm = trimesh.Trimesh(s.vertices * [1.0, 1.3, 0.8], s.faces, process=False)
    cos = (vertex_normals(torch.from_numpy(sm.vertices)[None], torch.from_numpy(sm.faces))[0].numpy() * sm.vertex_normals).sum(1)
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 2


def test_vertex_normals_batch_grad_unused():
    _, v, f = icosphere(1)
    vb = torch.stack([v, v * 2, -v]).requires_grad_(True)
    n = vertex_normals(vb, f)
    assert n.shape == vb.shape
    assert torch.allclose(n[0], n[1], atol=1e-12)                       # scale invariant
    assert torch.allclose(n[0], v / v.norm(dim=-1, keepdim=True), atol=1e-12)   # sphere: radial
    n.sum().backward(); assert torch.isfinite(vb.grad).all()
    v2 = torch.cat([v, torch.zeros(1, 3, dtype=v.dtype)])               # an unused vertex: zero normal, no NaN
    assert torch.equal(vertex_normals(v2[None], f)[0, -1], torch.zeros(3, dtype=v.dtype))


# ------------------------------------------------------------------------------------------------ plotly figures
def test_mesh_figure_plain_and_heatmap():
    s, v, f = icosphere(2)
    fig = mesh_figure(v, f, title='t')
    (tr,) = fig.data
    assert tr.type == 'mesh3d' and len(tr.x) == len(v) and len(tr.i) == len(f)
    assert np.array_equal(np.stack([tr.i, tr.j, tr.k], 1), f.numpy()) and np.allclose(tr.z, v[:, 2].numpy())
    assert tr.intensity is None and tr.color is not None and fig.layout.title.text == 't'
    cam = fig.layout.scene.camera
    assert (cam.eye.x, cam.eye.y, cam.up.y) == (0, 0, 1) and cam.eye.z > 0 and fig.layout.scene.aspectmode == 'data'
    err = torch.from_numpy(np.abs(s.vertices[:, 0])) * 3
    fig = mesh_figure(v, f, values=err, value_title='error (mm)', cmin=0, cmax=2, colorscale='Hot', flat_shading=True)
    tr = fig.data[0]
    assert tr.showscale and tr.colorbar.title.text == 'error (mm)' and (tr.cmin, tr.cmax) == (0, 2)
    assert np.allclose(tr.intensity, err.numpy()) and tr.flatshading
    assert mesh_figure(v, f, values=err).data[0].cmax == pytest.approx(float(err.max()))


def test_mesh_figure_colors_landmarks_mesh_input():
    _, v, f = icosphere(1)
    cols = torch.zeros(len(v), 3); cols[:, 0] = 1
    fig = mesh_figure(Mesh(v, f, colors=cols), landmarks=v[:5].numpy(), landmark_labels=True)
    mesh, lm = fig.data
    assert mesh.vertexcolor[0] == 'rgb(255,0,0)' and len(mesh.vertexcolor) == len(v)
    assert lm.type == 'scatter3d' and len(lm.x) == 5 and list(lm.text) == ['0', '1', '2', '3', '4'] and 'text' in lm.mode
    assert mesh_figure(v, f, landmarks=v[:3]).data[1].mode == 'markers'


def test_mesh_figure_errors():
    _, v, f = icosphere(1)
    V = len(v)
    cases = [(lambda: mesh_figure(v[None].repeat(2, 1, 1), f), 'batch'),
             (lambda: mesh_figure(v, f + V), 'indexes outside'),
             (lambda: mesh_figure(v, f, values=torch.zeros(V - 1)), f'`values` must have shape ({V},)'),
             (lambda: mesh_figure(v, f, values=torch.full((V,), float('nan'))), 'non-finite'),
             (lambda: mesh_figure(v, f, values=torch.zeros(V), vertex_colors=torch.zeros(V, 3)), 'not both'),
             (lambda: mesh_figure(v, f, vertex_colors=torch.full((V, 3), 3.0)), '[0, 1]'),
             (lambda: mesh_figure(v, f, view='top'), '`view` must be one of'),
             (lambda: mesh_figure(v), '`faces` is required'),
             (lambda: mesh_figure(v, f, landmarks=torch.zeros(4, 2)), '`landmarks` must have shape')]
    for fn, msg in cases:
        with pytest.raises(InputError) as e: fn()
        assert msg in str(e.value), (msg, str(e.value))


def test_compare_figure_shared_colour_range():
    _, v, f = icosphere(1)
    a, b = torch.rand(len(v)), torch.rand(len(v)) * 5 + 1
    fig = compare_figure([(v, f), dict(vertices=v, faces=f, values=a), Mesh(v * 2, f), dict(vertices=v, faces=f, values=b)],
                         titles=['A', 'B', 'C', 'D'], ncols=2, value_title='mm')
    assert [t.scene for t in fig.data] == ['scene', 'scene2', 'scene3', 'scene4']
    heat = [t for t in fig.data if t.intensity is not None]
    assert all(t.cmin == pytest.approx(float(min(a.min(), b.min()))) and t.cmax == pytest.approx(float(max(a.max(), b.max()))) for t in heat)
    assert [t.showscale for t in heat] == [False, True] and heat[1].colorbar.title.text == 'mm'
    assert [an.text for an in fig.layout.annotations] == ['A', 'B', 'C', 'D']
    assert fig.layout.scene.domain.y[0] > fig.layout.scene3.domain.y[1] - 1e-9      # two rows
    assert fig.layout.scene4.camera.up.y == 1
    with pytest.raises(InputError, match='titles'): compare_figure([(v, f)], titles=['a', 'b'])
    with pytest.raises(InputError, match=r'meshes\[0\]'): compare_figure([v])


# ------------------------------------------------------------------------------------------------ HTML
def test_save_html_standalone(tmp_path):
    from PIL import Image
    _, v, f = icosphere(1)
    img = (np.arange(6 * 5 * 3) * 7 % 256).astype(np.uint8).reshape(6, 5, 3)
    Image.fromarray(img).save(tmp_path / 'pic.png')
    grid = image_grid([img, img])
    figs = [(mesh_figure(v, f), 'first <mesh>'), mesh_figure(v * 2, f)]
    p = save_html(figs, tmp_path / 'page.html', title='Report & co', text='hello\n\nworld',
                  images=[(tmp_path / 'pic.png', 'from file'), (torch.from_numpy(img), 'from array'), grid])
    html = p.read_text()
    assert 'plotly.js v' in html and len(html) > 1_000_000                       # the library itself is inline
    assert not re.search(r'<script[^>]*\bsrc=', html) and 'src="http' not in html and "src='http" not in html
    assert html.count('Plotly.newPlot') == 2 and html.count('class="plotly-graph-div"') == 2
    assert 'first &lt;mesh&gt;' in html and '<title>Report &amp; co</title>' in html and '<p>world</p>' in html
    pngs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(pngs) == 3
    for b64 in pngs[:2]:
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(b64)))), img)
    assert not [x for x in tmp_path.iterdir() if x.name.startswith('.')]
    with pytest.raises(FileNotFoundError): save_html([], tmp_path / 'x.html', images=[tmp_path / 'missing.png'])
    with pytest.raises(InputError, match='captions'): save_html([figs[1]], tmp_path / 'x.html', captions=['a', 'b'])


# ------------------------------------------------------------------------------------------------ image grids
def test_image_grid_inputs_and_save(tmp_path):
    from PIL import Image
    g = image_grid([np.zeros((10, 20)), np.zeros((10, 20, 3), np.uint8), torch.rand(3, 10, 20)], titles=['a', 'b', 'c'], ncols=2)
    axes = [a for a in g.axes if a.images]
    assert len(axes) == 3 and [a.get_title() for a in axes] == ['a', 'b', 'c'] and len(g.axes) == 4
    assert [a.images[0].get_array().shape for a in axes] == [(10, 20), (10, 20, 3), (10, 20, 3)]
    assert [a for a in g.axes if a.images][2].images[0].get_array().shape == (10, 20, 3)
    bchw, bhwc = torch.rand(6, 3, 8, 12), torch.rand(6, 8, 12, 3)
    assert len([a for a in image_grid(bchw).axes if a.images]) == 6
    assert [a for a in image_grid(bhwc, ncols=6).axes if a.images][0].images[0].get_array().shape == (8, 12, 3)
    assert image_grid(torch.rand(2, 1, 8, 12)).axes[0].images[0].get_array().shape == (8, 12)
    p = save_figure(image_grid(bchw, ncols=3, figsize=(6, 4)), tmp_path / 'g.png', dpi=50)
    assert Image.open(p).size == (300, 200)
    with pytest.raises(InputError, match='ambiguous'): image_grid(torch.rand(2, 3, 8, 3))
    assert image_grid(torch.rand(2, 3, 8, 3), channels_first=True).axes[0].images[0].get_array().shape == (8, 3, 3)
    with pytest.raises(InputError, match=r'\[0, 1\]'): image_grid([np.full((4, 4, 3), 2.0)])
    with pytest.raises(InputError, match='titles'): image_grid([np.zeros((4, 4))], titles=['a', 'b'])
    with pytest.raises(InputError, match='format'): save_figure(image_grid([np.zeros((4, 4))]), tmp_path / 'g.bmpx')


def test_save_figure_plotly(tmp_path):
    _, v, f = icosphere(1)
    p = save_figure(mesh_figure(v, f, title='sphere'), tmp_path / 'm.html')
    assert 'Plotly.newPlot' in p.read_text() and '<title>sphere</title>' in p.read_text()
    with pytest.raises(InputError, match='kaleido'): save_figure(mesh_figure(v, f), tmp_path / 'm.png')


# ------------------------------------------------------------------------------------------------ preview renderer
def pixel_centres(H, W, scale, cx=0.0, cy=0.0):
    "World x, y of every pixel centre under the renderer's documented projection."
    j, i = np.meshgrid(np.arange(W), np.arange(H))
    return (j + 0.5 - W / 2) / scale + cx, (H / 2 - (i + 0.5)) / scale + cy


def test_front_square_coverage_and_colour():
    v, f = square()
    img = render_normals_preview(v, f, image_size=(40, 64), scale=16.0, center=(0, 0))[0].numpy()
    x, y = pixel_centres(40, 64, 16.0)
    inside = (np.abs(x) <= 1) & (np.abs(y) <= 1)
    covered = img.sum(-1) > 0
    assert np.array_equal(covered, inside) and inside.sum() == 32 * 32
    np.testing.assert_allclose(img[inside], np.tile([0.5, 0.5, 1.0], (inside.sum(), 1)), atol=1e-6)
    assert (img[~inside] == 0).all()


def test_triangle_coverage_matches_point_in_polygon():
    from matplotlib.path import Path as MPath
    tri = np.array([[-0.93, -0.71, 0.2], [0.87, -0.31, 0.2], [0.13, 0.91, 0.2]])
    img = render_normals_preview(tri, np.array([[0, 1, 2]]), image_size=50, scale=23.0, center=(0.0, 0.0))[0].numpy()
    x, y = pixel_centres(50, 50, 23.0)
    inside = MPath(tri[:, :2]).contains_points(np.stack([x.ravel(), y.ravel()], 1)).reshape(50, 50)
    assert np.array_equal(img.sum(-1) > 0, inside) and inside.sum() > 100


def test_tilted_plane_and_occlusion():
    v, f = square(half=0.5)
    R = Rotation.from_euler('xy', [20, -35], degrees=True).as_matrix()
    tilted = v.numpy() @ R.T
    n_expected = R @ np.array([0, 0, 1.0])
    front = np.concatenate([v.numpy() * 2 + [0, 0, -5.0], tilted])        # big square far behind, tilted square in front
    img = render_normals_preview(front, np.concatenate([f.numpy(), f.numpy() + 4]), image_size=64, shading='flat')[0].numpy()
    c = img[32, 32]
    np.testing.assert_allclose(c, (n_expected + 1) / 2, atol=1e-6)
    np.testing.assert_allclose(img[5, 5], [0.5, 0.5, 1.0], atol=1e-6)     # the far square shows where nothing covers it


def sphere_normal_error(img, H, scale, rmax=0.9):
    x, y = pixel_centres(H, H, scale)
    r2 = x ** 2 + y ** 2
    m = r2 < rmax ** 2
    ref = np.stack([x, y, np.sqrt(np.clip(1 - r2, 0, None))], -1)[m]
    got = img[m] * 2 - 1
    got /= np.linalg.norm(got, axis=1, keepdims=True)
    return np.degrees(np.arccos(np.clip((got * ref).sum(1), -1, 1)))


@pytest.mark.parametrize('shading,limit', [('smooth', 1.0), ('flat', 4.0)])
def test_sphere_normals_match_analytic(shading, limit):
    _, v, f = icosphere(4)
    img = render_normals_preview(v, f, image_size=96, scale=40.0, center=(0, 0), shading=shading)[0].numpy()
    err = sphere_normal_error(img, 96, 40.0)
    assert err.max() < limit, err.max()
    # the silhouette: covered pixels lie within the unit disc (the mesh is inscribed in the sphere)
    x, y = pixel_centres(96, 96, 40.0)
    assert ((img.sum(-1) > 0) <= (x ** 2 + y ** 2 <= 1)).all() and ((x ** 2 + y ** 2 < 0.95 ** 2) <= (img.sum(-1) > 0)).all()


def test_views_and_batch():
    _, v, f = icosphere(3)
    # side view: the world -x direction faces the camera (the face, looking along +z, points to the image right)
    R = Rotation.from_euler('y', 90, degrees=True).as_matrix()
    img = render_normals_preview(v, f, image_size=64, view='side', scale=25.0, center=(0, 0))[0].numpy()
    np.testing.assert_allclose(img[32, 32], [0.5, 0.5, 1.0], atol=0.02)
    assert np.allclose(R @ [-1, 0, 0], [0, 0, 1])
    ref = render_normals_preview(v, f, image_size=64, view=R, scale=25.0, center=(0, 0))
    assert torch.equal(ref[0], torch.from_numpy(img))
    # three-quarter: 45 degrees yaw, rendered through an explicit rotation applied to the vertices instead
    R45 = Rotation.from_euler('y', 45, degrees=True).as_matrix()
    a = render_normals_preview(v, f, image_size=64, view='three_quarter', scale=25.0, center=(0, 0))
    b = render_normals_preview(v.numpy() @ R45.T, f, image_size=64, scale=25.0, center=(0, 0))
    assert (a - b).abs().max() < 1e-5
    # a batch shares one fit: a half-size copy covers a quarter of the pixels
    batch = torch.stack([v, v * 0.5])
    imgs = render_normals_preview(batch, f, image_size=64)
    cov = (imgs.sum(-1) > 0).sum((1, 2)).double()
    assert imgs.shape == (2, 64, 64, 3) and 0.2 < float(cov[1] / cov[0]) < 0.3


def test_shaded_preview_lambert():
    v, f = square()
    img = render_shaded_preview(v, f, image_size=16, light=(0, 0, 1), ambient=0.2)[0].numpy()
    np.testing.assert_allclose(img[8, 8], [1, 1, 1], atol=1e-6)
    img = render_shaded_preview(v, f, image_size=16, light=(0, np.sqrt(3), 1), ambient=0.2)[0].numpy()   # 60 degrees
    np.testing.assert_allclose(img[8, 8], [0.6] * 3, atol=1e-6)
    img = render_shaded_preview(v, f, image_size=16, light=(0, 0, -1), ambient=0.2)[0].numpy()          # light behind
    np.testing.assert_allclose(img[8, 8], [0.2] * 3, atol=1e-6)


def test_preview_errors():
    v, f = square()
    cases = [(lambda: render_normals_preview(v, f, view='top'), '`view` must be one of'),
             (lambda: render_normals_preview(v, f, view=torch.eye(3) * 2), 'rotation matrix'),
             (lambda: render_normals_preview(v, f, image_size=0), 'positive'),
             (lambda: render_normals_preview(v, f + 4), 'indexes outside'),
             (lambda: render_normals_preview(v.masked_fill(v > 0, float('nan')), f), 'non-finite'),
             (lambda: render_normals_preview(v, f, shading='phong'), 'shading'),
             (lambda: render_normals_preview(v[None, None], f), '`vertices` must have shape'),
             (lambda: render_shaded_preview(v, f, light=(0, 0, 0)), 'non-zero')]
    for fn, msg in cases:
        with pytest.raises(InputError) as e: fn()
        assert msg in str(e.value), (msg, str(e.value))


def test_preview_speed_is_reasonable():
    "Not a timing assertion: a 20k-face sphere at 256^2 must simply complete and cover the disc."
    _, v, f = icosphere(5)
    img = render_normals_preview(v, f, image_size=256)
    assert (img.sum(-1) > 0).float().mean() > 0.6


# ------------------------------------------------------------------------------------------------ explorer
def tiny_model(kind='pca', names=True, joints=True):
    from facebench.models.base import ModelData, MorphableModel
    rng = np.random.default_rng(0)
    s = trimesh.creation.icosphere(subdivisions=1)
    V = len(s.vertices)
    kw = {}
    if joints:
        W = np.zeros((V, 3)); lower = s.vertices[:, 1] < -0.3
        W[:, 0] = 1; W[lower, 0] = 0; W[lower, 2] = 1
        Jr = np.zeros((3, V)); Jr[:, 0] = 1
        kw = dict(joint_names=['global', 'neck', 'jaw'], parents=np.array([-1, 0, 1]), J_regressor=Jr, lbs_weights=W)
    data = ModelData(name='tiny', v_template=s.vertices, faces=s.faces, shapedirs=rng.normal(0, 0.1, (V, 3, 4)),
                     exprdirs=rng.normal(0, 0.1, (V, 3, 3)), landmark_faces=np.zeros(68, int), landmark_bary=np.full((68, 3), 1 / 3),
                     expression_names=['jawOpen', 'smile', 'blink'] if names else None, expression_kind=kind,
                     regions={'face': np.arange(V)}, **kw)
    return MorphableModel(data, dtype=torch.float64)


def mesh_xyz(ui):
    t = ui.figure.data[0]
    return np.stack([np.asarray(t.x), np.asarray(t.y), np.asarray(t.z)], 1)


def test_model_explorer_sliders_update_figure():
    model = tiny_model()
    ui = model_explorer(model, n_shape=3, n_expression=2)
    np.testing.assert_allclose(mesh_xyz(ui), model.v_template.numpy(), atol=1e-12)
    descs = {k: s.description for k, s in ui.sliders.items()}
    assert descs[('expression', 0)] == 'jawOpen' and descs[('shape', 2)] == 'shape 2' and ('jaw', 0) in ui.sliders
    assert ('shape', 3) not in ui.sliders
    ui.sliders[('shape', 1)].value = 1.5
    ui.sliders[('expression', 1)].value = -0.7
    ui.sliders[('global', 1)].value = 30.0
    ui.sliders[('jaw', 0)].value = 10.0
    shape = torch.tensor([[0, 1.5, 0, 0]], dtype=torch.float64)
    expr = torch.tensor([[0, -0.7, 0]], dtype=torch.float64)
    gp = torch.from_numpy(Rotation.from_euler('y', 30, degrees=True).as_rotvec())[None]
    jp = torch.tensor([[np.radians(10.0), 0, 0]], dtype=torch.float64)
    ref = model(shape=shape, expression=expr, global_pose=gp, jaw_pose=jp).vertices[0].numpy()
    np.testing.assert_allclose(mesh_xyz(ui), ref, atol=1e-9)
    ui.children[0].children[-1].click()                                  # reset
    np.testing.assert_allclose(mesh_xyz(ui), model.v_template.numpy(), atol=1e-12)
    assert all(s.value == 0 for s in ui.sliders.values())


def test_model_explorer_named_blendshapes_and_errors():
    model = tiny_model(kind='blendshape', joints=False)
    ui = model_explorer(model, n_shape=0, expressions=['blink', 'jawOpen'])
    s = ui.sliders[('expression', 2)]
    assert s.description == 'blink' and (s.min, s.max) == (0, 1) and ('jaw', 0) not in ui.sliders
    s.value = 1.0
    ref = model(expression=torch.tensor([[0, 0, 1.0]], dtype=torch.float64)).vertices[0].numpy()
    np.testing.assert_allclose(mesh_xyz(ui), ref, atol=1e-9)
    with pytest.raises(InputError, match='unknown expression'): model_explorer(model, expressions=['frown'])
    with pytest.raises(InputError, match='no expression names'): model_explorer(tiny_model(names=False), expressions=['a'])
    with pytest.raises(InputError, match='MorphableModel'): model_explorer('flame')
