"Mesh I/O: OBJ and PLY round trips, cross-checks against trimesh, parsing edge cases and errors."
import os, sys, warnings
from pathlib import Path
import numpy as np
import pytest
import torch
from facebench.core import InputError
from facebench.io import Mesh, read_obj, write_obj, read_ply, write_ply, load_mesh, save_mesh, to_trimesh, from_trimesh

trimesh = pytest.importorskip('trimesh')
ICT_OBJ = Path('/work/shared/assets/ict-facekit/sample_objs/generic_neutral_mesh.obj')


def random_mesh(V=50, F=80, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(V, 3, generator=g, dtype=torch.float64).to(dtype) * 3
    f = torch.randint(0, V, (F, 3), generator=g)
    return v, f


def same_geometry(v1, f1, v2, f2, tol=1e-6):
    "Compare two meshes as multisets of positioned, oriented triangles, independent of vertex order and duplication."
    from scipy.spatial import cKDTree
    v1, v2 = np.asarray(v1, np.float64), np.asarray(v2, np.float64)
    _, cls = np.unique(v1, axis=0, return_inverse=True)          # position class of each mesh-1 vertex
    d, nn = cKDTree(v1).query(v2)                                  # each mesh-2 vertex -> its mesh-1 twin
    if d.max() > tol: return False
    a, b = cls.reshape(-1)[np.asarray(f1)], cls.reshape(-1)[nn][np.asarray(f2)]
    def canon(t):
        r = np.argmin(t, 1)
        t = np.stack([t[np.arange(len(t)), (r + k) % 3] for k in range(3)], 1)
        return t[np.lexsort(t.T[::-1])]
    return a.shape == b.shape and np.array_equal(canon(a), canon(b))


# ---------------------------------------------------------------------------------------------------------- OBJ
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_obj_roundtrip_exact(tmp_path, dtype):
    v, f = random_mesh(dtype=dtype)
    m = read_obj(write_obj(tmp_path / 'm.obj', v, f), dtype=dtype)
    assert torch.equal(m.vertices, v) and torch.equal(m.faces, f)
    assert m.uv is None and m.faces_uv is None and m.normals is None and m.texture is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]   # no temp file left behind


def test_obj_numpy_input_and_uv_roundtrip(tmp_path):
    v, f = random_mesh()
    g = torch.Generator().manual_seed(1)
    uv = torch.rand(70, 2, generator=g)              # T != V: per-corner UVs with seams
    fuv = torch.randint(0, 70, f.shape, generator=g)
    m = read_obj(write_obj(tmp_path / 'm.obj', v.numpy(), f.numpy(), uv=uv.numpy(), faces_uv=fuv.numpy()))
    assert torch.equal(m.vertices, v) and torch.equal(m.faces, f)
    assert torch.equal(m.uv, uv) and torch.equal(m.faces_uv, fuv)
    line = next(l for l in (tmp_path / 'm.obj').read_text().splitlines() if l.startswith('f '))
    assert line == f"f {f[0, 0] + 1}/{fuv[0, 0] + 1} {f[0, 1] + 1}/{fuv[0, 1] + 1} {f[0, 2] + 1}/{fuv[0, 2] + 1}"


def test_obj_texture_and_mtl(tmp_path):
    from PIL import Image
    v, f = random_mesh(V=4, F=2)
    uv = torch.rand(4, 2)
    tex = (np.arange(16 * 8 * 3) % 256).astype(np.uint8).reshape(16, 8, 3)
    write_obj(tmp_path / 'head.obj', v, f, uv=uv, texture=tex)
    assert (tmp_path / 'head.mtl').exists() and (tmp_path / 'head.png').exists()
    assert 'map_Kd head.png' in (tmp_path / 'head.mtl').read_text()
    assert 'mtllib head.mtl' in (tmp_path / 'head.obj').read_text()
    assert np.array_equal(np.asarray(Image.open(tmp_path / 'head.png')), tex)
    m = read_obj(tmp_path / 'head.obj')
    assert m.texture == tmp_path / 'head.png' and torch.equal(m.uv[m.faces_uv], uv[f])
    # float texture in [0,1], custom names
    write_obj(tmp_path / 'b.obj', v, f, uv=uv, texture=torch.full((4, 4, 3), 0.5), mtl_name='mat.mtl', texture_name='albedo.png')
    assert np.all(np.asarray(Image.open(tmp_path / 'albedo.png')) == 128)
    assert read_obj(tmp_path / 'b.obj').texture == tmp_path / 'albedo.png'
    # a texture file is copied beside the OBJ
    (tmp_path / 'sub').mkdir()
    write_obj(tmp_path / 'sub' / 'c.obj', v, f, uv=uv, texture=tmp_path / 'head.png')
    assert read_obj(tmp_path / 'sub' / 'c.obj').texture == tmp_path / 'sub' / 'head.png'
    # trimesh reads our material and texture
    tm = trimesh.load(tmp_path / 'head.obj', process=False, force='mesh')
    assert np.array_equal(np.asarray(tm.visual.material.image.convert('RGB')), tex)
    np.testing.assert_allclose(tm.visual.uv[tm.faces], uv[f].numpy(), atol=1e-6)


def test_obj_normals_and_colors(tmp_path):
    v, f = random_mesh()
    n = torch.nn.functional.normalize(torch.randn(50, 3), dim=1)
    c = torch.rand(50, 3)
    m = read_obj(write_obj(tmp_path / 'a.obj', v, f, normals=n, colors=c))
    assert torch.equal(m.normals, n) and m.faces_normals is None and torch.equal(m.colors, c)
    assert ' '.join(['%d//%d' % (i + 1, i + 1) for i in f[0].tolist()]) in (tmp_path / 'a.obj').read_text()
    # per-corner normals with their own index
    fn = torch.randint(0, 7, f.shape)
    m = read_obj(write_obj(tmp_path / 'b.obj', v, f, uv=torch.rand(50, 2), normals=n[:7], faces_normals=fn))
    assert torch.equal(m.faces_normals, fn) and torch.equal(m.normals, n[:7])
    # uint8 colours are written as [0,1] floats
    cu = (c * 255).round().to(torch.uint8)
    m = read_obj(write_obj(tmp_path / 'c.obj', v, f, colors=cu))
    assert torch.allclose(m.colors * 255, cu.float(), atol=1e-4)


def test_obj_mesh_argument(tmp_path):
    v, f = random_mesh()
    m = Mesh(v, f, uv=torch.rand(50, 2), faces_uv=f.clone())
    r = load_mesh(save_mesh(tmp_path / 'm.obj', m))
    assert torch.equal(r.vertices, v) and torch.equal(r.uv, m.uv) and torch.equal(r.faces_uv, f)


def test_obj_parsing_features(tmp_path):
    text = ("# header comment\r\n"
            "mtllib missing.mtl\r\n"
            "o thing\r\n"
            "v 0 0 0\r\n"
            "v\t1 0 0   # trailing comment\r\n"
            "  v 1 1 0\r\n"
            "v 0 1 0\r\n"
            "v 0.5 1.5 0\r\n"
            "vt 0 0 0\r\n"
            "vt 1 0 0\r\n"
            "vt 1 1\r\n"
            "vt 0 1\r\n"
            "vt 0.5 1\r\n"
            "vn 0 0 1\r\n"
            "g group1\r\n"
            "s off\r\n"
            "usemtl none\r\n"
            "f 1/1/1 2/2/1 3/3/1 4/4/1 \r\n"        # quad, trailing space
            "f -2/-2/-1 -1/-1/-1 -5/-5/-1\r\n"      # negative indices
            "l 1 2\r\n")
    (tmp_path / 'p.obj').write_text(text)
    m = read_obj(tmp_path / 'p.obj')
    assert m.vertices.shape == (5, 3) and m.vertices[1].tolist() == [1, 0, 0]
    assert m.faces.tolist() == [[0, 1, 2], [0, 2, 3], [3, 4, 0]]   # fan of the quad, then the negative-index triangle
    assert m.faces_uv.tolist() == m.faces.tolist() and m.uv.shape == (5, 2)
    assert m.normals.shape == (1, 3) and m.faces_normals.tolist() == [[0, 0, 0]] * 3
    assert m.texture is None   # the material file is missing: no texture, no error


def test_obj_polygon_fan_and_v_only(tmp_path):
    (tmp_path / 'h.obj').write_text("v 0 0 0\nv 1 0 0\nv 2 1 0\nv 1 2 0\nv 0 1 0\nf 1 2 3 4 5\nf 1 3 4\n")
    m = read_obj(tmp_path / 'h.obj')
    assert m.faces.tolist() == [[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 2, 3]]
    assert m.faces_uv is None and m.normals is None
    # trimesh triangulates the same polygons to the same area
    tm = trimesh.load(tmp_path / 'h.obj', process=False, force='mesh')
    assert np.isclose(to_trimesh(m).area, tm.area)


def test_obj_missing_texture_and_partial_colours_warn(tmp_path):
    (tmp_path / 'm.mtl').write_text("newmtl a\nmap_Kd gone.png\n")
    (tmp_path / 'm.obj').write_text("mtllib m.mtl\nv 0 0 0 1 0 0\nv 1 0 0\nv 1 1 0\nf 1 2 3\n")
    with pytest.warns(UserWarning) as rec:
        m = read_obj(tmp_path / 'm.obj')
    msgs = ' '.join(str(r.message) for r in rec)
    assert 'gone.png' in msgs and 'colours dropped' in msgs and m.texture is None and m.colors is None


def test_obj_mixed_corner_formats_warn(tmp_path):
    (tmp_path / 'm.obj').write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nvt 0 0\nf 1/1 2/1 3/1\nf 1 2 3\n")
    with pytest.warns(UserWarning, match='only some faces have texture'):
        m = read_obj(tmp_path / 'm.obj')
    assert m.faces_uv is None and m.faces.shape == (2, 3)


@pytest.mark.parametrize('body,msg', [
    ("v 0 0 0\nv 1 0 0\nv 1 x 0\nf 1 2 3\n", 'm.obj:3'),
    ("v 0 0 0\nv 1 0 0\nv 1 1 0\nf 1 2 4\n", 'm.obj:4'),
    ("v 0 0 0\nv 1 0 0\nf -1 -2 -3\nv 1 1 0\n", 'm.obj:3'),
    ("v 0 0 0\nv 1 0 0\nv 1 1 0\nf 1 2\n", 'at least 3'),
    ("v 0 0 0\nv 1 0 0\nv 1 1 0\nf 1 2 a\n", "bad face corner 'a'"),
    ("v 0 0 0\nv 1 0 0\nv 1 1 0\nvt 0 0\nf 1/1 2/1 3/2\n", 'texture coordinate 2'),
    ("v 0 0\nv 1 0 0\nv 1 1 0\nf 1 2 3\n", 'm.obj:1'),
    ("vt 0 0\n", 'no vertex'),
])
def test_obj_errors_name_line(tmp_path, body, msg):
    (tmp_path / 'm.obj').write_text(body)
    with pytest.raises(InputError, match=msg.replace('(', r'\(')):
        read_obj(tmp_path / 'm.obj')


def test_obj_cross_trimesh(tmp_path):
    v, f = random_mesh(V=200, F=300)
    uv = torch.rand(200, 2)
    write_obj(tmp_path / 'ours.obj', v, f, uv=uv)
    tm = trimesh.load(tmp_path / 'ours.obj', process=False, force='mesh')
    np.testing.assert_allclose(tm.vertices[tm.faces], v[f].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(tm.visual.uv[tm.faces], uv[f].numpy(), rtol=0, atol=1e-6)
    # trimesh's writer, our reader
    t2 = trimesh.Trimesh(v.double().numpy(), f.numpy(), process=False,
                         visual=trimesh.visual.TextureVisuals(uv=uv.double().numpy()))
    (tmp_path / 'theirs.obj').write_text(trimesh.exchange.obj.export_obj(t2, include_normals=True, include_texture=True))
    m = read_obj(tmp_path / 'theirs.obj', dtype=torch.float64)
    assert same_geometry(m.vertices.numpy(), m.faces.numpy(), v.double().numpy(), f.numpy())
    np.testing.assert_allclose(m.uv[m.faces_uv].numpy(), uv[f].double().numpy(), atol=1e-6)
    np.testing.assert_allclose(m.normals.numpy()[m.faces_normals.numpy()] if m.faces_normals is not None else m.normals[m.faces].numpy(),
                               t2.vertex_normals[f.numpy()], atol=1e-6)


@pytest.mark.skipif(not ICT_OBJ.exists(), reason='ICT-FaceKit sample not present')
def test_ict_sample_matches_trimesh():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        tm = trimesh.load(ICT_OBJ, process=False, force='mesh')
    m = read_obj(ICT_OBJ, dtype=torch.float64)
    lines = ICT_OBJ.read_text().splitlines()
    assert m.n_vertices == sum(l.startswith('v ') for l in lines) == 26719
    assert m.uv.shape[0] == sum(l.startswith('vt ') for l in lines)
    n_tri = sum(len(l.split()) - 3 for l in lines if l.startswith('f '))   # a polygon of k corners gives k-2 triangles
    assert m.n_faces == n_tri == len(tm.faces)
    np.testing.assert_allclose(m.vertices.numpy().min(0), tm.bounds[0]); np.testing.assert_allclose(m.vertices.numpy().max(0), tm.bounds[1])
    assert same_geometry(m.vertices.numpy(), m.faces.numpy(), tm.vertices, tm.faces)
    assert np.isclose(to_trimesh(m).area, tm.area, rtol=1e-9)


# ---------------------------------------------------------------------------------------------------------- PLY
@pytest.mark.parametrize('binary', [True, False])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_ply_roundtrip(tmp_path, binary, dtype):
    v, f = random_mesh(dtype=dtype)
    c = torch.randint(0, 256, (50, 3), dtype=torch.uint8)
    n = torch.nn.functional.normalize(torch.randn(50, 3, dtype=dtype), dim=1)
    m = read_ply(write_ply(tmp_path / 'm.ply', v, f, colors=c, normals=n, binary=binary), dtype=dtype)
    assert torch.equal(m.vertices, v) and torch.equal(m.faces, f) and torch.equal(m.normals, n)
    assert torch.equal(torch.round(m.colors * 255).to(torch.uint8), c)
    head = (tmp_path / 'm.ply').read_bytes()[:60]
    assert (b'binary_little_endian' in head) == binary and (b'ascii' in head) != binary


def test_ply_float_colors_and_point_cloud(tmp_path):
    v, f = random_mesh()
    c = torch.rand(50, 3)
    m = read_ply(write_ply(tmp_path / 'a.ply', v, f, colors=c))
    assert torch.allclose(m.colors, torch.round(c * 255) / 255, atol=1e-7)
    p = read_ply(write_ply(tmp_path / 'pc.ply', v, torch.zeros(0, 3, dtype=torch.long)))
    assert p.faces.shape == (0, 3) and torch.equal(p.vertices, v)


def test_ply_cross_trimesh(tmp_path):
    v, f = random_mesh(V=100, F=150)
    c = torch.randint(0, 256, (100, 3), dtype=torch.uint8)
    for binary in (True, False):
        write_ply(tmp_path / 'ours.ply', v, f, colors=c, binary=binary)
        tm = trimesh.load(tmp_path / 'ours.ply', process=False)
        np.testing.assert_array_equal(tm.vertices, v.double().numpy())
        np.testing.assert_array_equal(tm.faces, f.numpy())
        np.testing.assert_array_equal(tm.visual.vertex_colors[:, :3], c.numpy())
    t2 = trimesh.Trimesh(v.double().numpy(), f.numpy(), process=False, vertex_colors=c.numpy())
    for enc in ('binary', 'ascii'):
        (tmp_path / f'theirs_{enc}.ply').write_bytes(trimesh.exchange.ply.export_ply(t2, encoding=enc))
        m = read_ply(tmp_path / f'theirs_{enc}.ply', dtype=torch.float64)
        np.testing.assert_allclose(m.vertices.numpy(), v.double().numpy(), rtol=0, atol=1e-12 if enc == 'binary' else 1e-7)
        assert torch.equal(m.faces, f)
        assert torch.equal(torch.round(m.colors * 255).to(torch.uint8), c)


def test_ply_big_endian_polygons_extra_elements(tmp_path):
    "Hand-written PLYs: big endian, mixed triangles and quads (slow path), extra properties and elements."
    verts = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0]], np.float32)
    header = ("ply\nformat binary_big_endian 1.0\ncomment hand made\nelement vertex 5\nproperty float x\nproperty float y\n"
              "property float z\nproperty uchar quality\nelement face 2\nproperty uchar flags\nproperty list uchar uint vertex_index\n"
              "element edge 1\nproperty int vertex1\nproperty int vertex2\nend_header\n").encode()
    vd = np.zeros(5, [('p', '>f4', (3,)), ('q', 'u1')]); vd['p'] = verts
    body = vd.tobytes()
    body += np.array([7], 'u1').tobytes() + np.array([4], 'u1').tobytes() + np.array([0, 1, 2, 3], '>u4').tobytes()
    body += np.array([7], 'u1').tobytes() + np.array([3], 'u1').tobytes() + np.array([1, 4, 2], '>u4').tobytes()
    body += np.array([0, 1], '>i4').tobytes()
    (tmp_path / 'be.ply').write_bytes(header + body)
    m = read_ply(tmp_path / 'be.ply')
    assert torch.equal(m.vertices, torch.from_numpy(verts))
    assert m.faces.tolist() == [[0, 1, 2], [0, 2, 3], [1, 4, 2]]
    ascii_ply = ("ply\nformat ascii 1.0\nelement vertex 5\nproperty float x\nproperty float y\nproperty float z\n"
                 "element face 2\nproperty list uchar int vertex_indices\nend_header\n"
                 + ''.join(' '.join(map(str, r)) + '\n' for r in verts.tolist()) + "4 0 1 2 3\n3 1 4 2\n")
    (tmp_path / 'a.ply').write_text(ascii_ply)
    assert read_ply(tmp_path / 'a.ply').faces.tolist() == [[0, 1, 2], [0, 2, 3], [1, 4, 2]]
    # trimesh agrees on the triangulated area
    assert np.isclose(to_trimesh(read_ply(tmp_path / 'a.ply')).area, 1.5)


@pytest.mark.parametrize('content,msg', [
    (b'hello\n', 'not a PLY file'),
    (b'ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nend_header\n' + b'\0' * 20,
     'truncated'),
    (b'ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nend_header\n0 0 0\n1 1 1\n',
     'ends inside'),
    (b'ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nend_header\n0 0\n', r"lacks properties \['z'\]"),
    (b'ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nelement face 1\n'
     b'property list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 5\n', 'outside'),
    (b'ply\nformat ascii 1.0\nelement vertex 1\nproperty quaternion x\nend_header\n0\n', 'bad property line'),
    (b'ply\nformat bogus 1.0\nend_header\n', 'unknown PLY format'),
])
def test_ply_errors(tmp_path, content, msg):
    (tmp_path / 'x.ply').write_bytes(content)
    with pytest.raises(InputError, match=msg):
        read_ply(tmp_path / 'x.ply')


# ------------------------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize('writer', [write_obj, write_ply])
def test_writer_input_errors(tmp_path, writer):
    v, f = random_mesh(V=10, F=5)
    p = tmp_path / ('m' + ('.obj' if writer is write_obj else '.ply'))
    cases = [
        (lambda: writer(p, v[None].expand(2, -1, -1), f), 'batch of shape (2, 10, 3)'),
        (lambda: writer(p, v[:, :2], f), '`vertices` must have shape (V, 3)'),
        (lambda: writer(p, v.masked_fill(v > 2, float('nan')), f), 'non-finite'),
        (lambda: writer(p, v, f + 10), 'indexes outside [0, 10)'),
        (lambda: writer(p, v, f.float()), 'integer indices'),
        (lambda: writer(p, v, f[:, :2]), '`faces` must have shape'),
        (lambda: writer(p, v, None), '`faces` is required'),
        (lambda: writer(p, 'abc', f), 'torch.Tensor or numpy array'),
        (lambda: writer(tmp_path / 'nodir' / p.name, v, f), 'does not exist'),
    ]
    for fn, msg in cases:
        with pytest.raises((InputError, FileNotFoundError)) as e:
            fn()
        assert msg in str(e.value), (msg, str(e.value))


def test_obj_specific_errors(tmp_path):
    v, f = random_mesh(V=10, F=5)
    p = tmp_path / 'm.obj'
    with pytest.raises(InputError, match='needs texture coordinates'): write_obj(p, v, f, texture=np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InputError, match='channels-first'): write_obj(p, v, f, uv=torch.rand(10, 2), texture=torch.rand(3, 8, 8))
    with pytest.raises(InputError, match=r'must lie in \[0, 1\]'): write_obj(p, v, f, uv=torch.rand(10, 2), texture=torch.full((4, 4, 3), 2.0))
    with pytest.raises(InputError, match='pass `faces_uv`'): write_obj(p, v, f, uv=torch.rand(7, 2))
    with pytest.raises(InputError, match='indexes outside'): write_obj(p, v, f, uv=torch.rand(7, 2), faces_uv=f)
    with pytest.raises(InputError, match='without `uv`'): write_obj(p, v, f, faces_uv=f)
    with pytest.raises(InputError, match='one row per vertex'): write_obj(p, v, f, colors=torch.rand(3, 3))
    with pytest.raises(FileNotFoundError, match='nope.png'): write_obj(p, v, f, uv=torch.rand(10, 2), texture=tmp_path / 'nope.png')
    with pytest.raises(FileNotFoundError): read_obj(tmp_path / 'absent.obj')
    with pytest.raises(InputError, match=r'\[0, 1\]'): write_ply(tmp_path / 'm.ply', v, f, colors=torch.full((10, 3), 1.5))
    with pytest.raises(InputError, match='unknown mesh suffix'): load_mesh(tmp_path / 'm.stl')


def test_atomic_write_keeps_old_file(tmp_path, monkeypatch):
    v, f = random_mesh(V=10, F=5)
    p = write_obj(tmp_path / 'm.obj', v, f)
    before = p.read_bytes()
    def boom(*a, **k): raise OSError('disk full')
    monkeypatch.setattr(os, 'replace', boom)
    with pytest.raises(OSError, match='disk full'):
        write_obj(p, v * 2, f)
    assert p.read_bytes() == before and sorted(x.name for x in tmp_path.iterdir()) == ['m.obj']


# ------------------------------------------------------------------------------------------------ trimesh interop
def test_trimesh_interop():
    v, f = random_mesh(V=30, F=40, dtype=torch.float64)
    c = torch.rand(30, 3, dtype=torch.float64)
    tm = to_trimesh(Mesh(v, f, colors=c))
    np.testing.assert_array_equal(tm.vertices, v.numpy()); np.testing.assert_array_equal(tm.faces, f.numpy())
    np.testing.assert_array_equal(tm.visual.vertex_colors[:, :3], np.round(c.numpy() * 255))
    back = from_trimesh(tm, dtype=torch.float64)
    assert torch.equal(back.vertices, v) and torch.equal(back.faces, f)
    assert torch.allclose(back.colors, torch.round(c * 255) / 255)
    assert to_trimesh(v.numpy(), f.numpy()).vertices.shape == (30, 3)
    box = trimesh.creation.box()
    assert from_trimesh(box).n_faces == 12
    with pytest.raises(InputError, match='Scene'): from_trimesh(trimesh.Scene([box]))
    with pytest.raises(InputError, match='`faces` is required'): to_trimesh(v)


def test_trimesh_missing_message(monkeypatch):
    monkeypatch.setitem(sys.modules, 'trimesh', None)
    with pytest.raises(ImportError, match='pip install trimesh'):
        to_trimesh(torch.zeros(3, 3), torch.tensor([[0, 1, 2]]))
