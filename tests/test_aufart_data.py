"""AUFART data: AU -> expression maps against the ICT kit's table (typed in here) and AU-named components (the
built-in head's, with OpenGraphAU's AUs it lacks mapping to nothing), AU envelopes against their closed form,
synthetic renders against an independent orthographic projection of the model's landmarks, the image-folder loader
on a folder written by the test, and every error."""
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from facebench.core import InputError
from facebench.models.base import MorphableModel, REGION_NAMES
from facebench.models.builtin import builtin_head, BUILTIN_AUS
from facebench.aufart.nets import AU_NAMES
from facebench.aufart.data import (ImageFolderDataset, SyntheticConfig, au_envelope, au_expression_map, au_sequence,
                                   au_to_expression, procedural_albedo, sample_aus, synthetic_batch, synthetic_sequences)

ICT_NPZ = Path(__file__).resolve().parent.parent.parent / 'shared' / 'assets' / 'ict-facekit' / 'ict_facekit_light.npz'

@pytest.fixture(scope='module')
def head(): return builtin_head(n_vertices=1000)

class _Names:
    def __init__(self, names, name='m'): self.expression_names, self.name = names, name

def test_au_named_components_and_sides():
    m = _Names(['AU12_L', 'AU12_R', 'au1', 'AU26', 'blink'])
    au = torch.zeros(2, 27); au[0, AU_NAMES.index('AU12')] = 0.7; au[1, AU_NAMES.index('AU1')] = 0.4
    w = au_to_expression(au, m)
    assert torch.allclose(w, torch.tensor([[0.7, 0.7, 0, 0, 0], [0, 0, 0.4, 0, 0]]))

def test_ict_names_follow_the_kit_table():
    from facebench.models.ict import ICT_EXPRESSION_NAMES
    m = _Names(list(ICT_EXPRESSION_NAMES))
    au = torch.zeros(1, 27); au[0, AU_NAMES.index('AU12')] = 0.8; au[0, AU_NAMES.index('AU26')] = 0.5
    w = au_to_expression(au, m)[0]
    E = list(ICT_EXPRESSION_NAMES)
    # kit README: AU12 = mouthSmile_L + mouthSmile_R; facebench's extension: AU26 -> jawOpen
    expect = {'mouthSmile_L': 0.8, 'mouthSmile_R': 0.8, 'jawOpen': 0.5}
    for n, v in expect.items(): assert abs(float(w[E.index(n)]) - v) < 1e-7
    assert float(w.sum()) == pytest.approx(sum(expect.values()))

def test_map_errors():
    with pytest.raises(InputError, match='PCA'): au_expression_map(_Names([f'exp{i}' for i in range(50)], 'flame'))
    with pytest.raises(InputError, match='no expression names'): au_expression_map(_Names(None))
    m = _Names(['AU12'])
    with pytest.raises(InputError, match='divide 0-5'): au_to_expression(torch.full((1, 27), 2.0), m)
    with pytest.raises(InputError, match='au'): au_to_expression(torch.zeros(1, 26), m)

def test_envelope_closed_form():
    e = au_envelope(20, onset=2, apex=6, offset=10, end=14, peak=0.8)
    assert float(e[:3].abs().max()) == 0 and torch.allclose(e[6:11], torch.full((5,), 0.8, dtype=e.dtype))
    x = (4 - 2) / 4
    assert float(e[4]) == pytest.approx(0.8 * x * x * (3 - 2 * x))         # smoothstep half-way: 0.4
    assert float(e[14:].abs().max()) == 0
    with pytest.raises(InputError, match='onset <= apex'): au_envelope(10, 5, 3, 6, 8)
    with pytest.raises(InputError, match='T >= 2'): au_sequence(1)
    s = au_sequence(30, 4, torch.Generator().manual_seed(0))
    assert s.shape == (30, 27) and int((s.amax(0) > 0).sum()) == 4 and s.min() >= 0 and s.max() <= 1
    assert float(s.diff(dim=0).abs().max()) <= 1.5 / 5 + 1e-6      # ramps of >= T/6 = 5 frames: smoothstep slope <= 1.5/5

def test_sample_aus_rates():
    a = sample_aus(4000, p_active=0.25, intensity_min=0.3, generator=torch.Generator().manual_seed(0))
    on = a > 0
    assert abs(float(on.float().mean()) - 0.25) < 0.01 and float(a[on].min()) >= 0.3 and float(a.max()) <= 1

def test_builtin_head_drives_landmarks(head):
    assert set(REGION_NAMES) <= set(head.regions) and head.expression_names == list(BUILTIN_AUS)
    # through the AU map: AU26 (jaw drop) moves the chin landmark down, AU1 the inner brows up, AU12 the left mouth
    # corner (iBUG 54, +x in FLAME's frame) outwards and AU15 it down
    for au, lm, axis, sign in (('AU26', 8, 1, -1), ('AU1', 21, 1, 1), ('AU1', 22, 1, 1), ('AU12', 54, 0, 1), ('AU12', 48, 0, -1),
                               ('AU15', 54, 1, -1)):
        a = torch.zeros(1, 27); a[0, AU_NAMES.index(au)] = 1
        d = (head(expression=au_to_expression(a, head)).landmarks - head().landmarks)[0, lm, axis]
        assert sign * float(d) > 0.001, au

def test_builtin_head_au_coverage(head):
    """OpenGraphAU AUs without a built-in component map to nothing; built-in AUs OpenGraphAU lacks are never driven;
    every shared AU drives exactly its own component."""
    M = au_expression_map(head)
    assert M.shape == (27, len(BUILTIN_AUS))
    names = list(head.expression_names)
    for i, au in enumerate(AU_NAMES):
        want = torch.zeros(len(names), dtype=M.dtype)
        if au in names: want[names.index(au)] = 1
        assert torch.equal(M[i], want), au
    lacking = [au for au in AU_NAMES if au not in names]
    assert lacking == ['AU13', 'AU19', 'AU32', 'AU38', 'AU39']
    for au in ('AU28', 'AU45'): assert float(M[:, names.index(au)].sum()) == 0
    a = torch.zeros(1, 27); a[0, [AU_NAMES.index(x) for x in lacking]] = 1
    assert float(au_to_expression(a, head).abs().sum()) == 0

def test_synthetic_batch_ground_truth(head):
    cfg = SyntheticConfig(image_size=40)
    sb = synthetic_batch(head, 3, cfg, 5)
    assert sb.image.shape == (3, 3, 40, 40) and float(sb.image.min()) >= 0 and float(sb.image.max()) <= 1
    # landmarks: DECA orthographic projection of the posed model's landmarks, computed here independently
    lm3 = head(shape=sb.params.shape, expression=sb.params.expression, global_pose=sb.params.global_pose).landmarks
    s, tx, ty = sb.camera[:, :1], sb.camera[:, 1:2], sb.camera[:, 2:3]
    u = (s * (lm3[..., 0] + tx) + 1) * 40 / 2
    v = (-s * (lm3[..., 1] + ty) + 1) * 40 / 2
    torch.testing.assert_close(sb.landmarks, torch.stack([u, v], -1), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(sb.params.expression, au_to_expression(sb.au, head))
    # the same seed gives the same batch; another seed another one
    sb2 = synthetic_batch(head, 3, cfg, 5)
    assert torch.equal(sb.image, sb2.image) and not torch.equal(sb.image, synthetic_batch(head, 3, cfg, 6).image)
    # the face covers the centre and the background the corners
    assert float(sb.mask[:, 0, 20, 20].min()) > 0.99 and float(sb.mask[:, 0, 0, 0].max()) == 0
    with pytest.raises(InputError, match='au'): synthetic_batch(head, 2, cfg, 0, au=torch.zeros(3, 27))

def test_sequences(head):
    sq = synthetic_sequences(head, 2, 6, SyntheticConfig(image_size=24), 0)
    assert len(sq) == 12
    shp = sq.params.shape.view(2, 6, -1)
    assert torch.equal(shp[:, 0], shp[:, 5]) and not torch.equal(shp[0, 0], shp[1, 0])   # one identity per sequence
    assert torch.equal(sq.texture[0], sq.texture[5])
    with pytest.raises(InputError, match='T >= 2'): synthetic_sequences(head, 1, 1)

def test_albedo_regions(head):
    tex = procedural_albedo(head, 2, 32, torch.Generator().manual_seed(0))
    assert tex.shape == (2, 3, 32, 32) and float(tex.min()) >= 0 and float(tex.max()) <= 1
    assert tex.std() > 0.01   # lips, eyes and hair differ from the skin

@pytest.mark.skipif(not ICT_NPZ.exists(), reason=f'{ICT_NPZ} absent')
def test_ict_synthetic_batch():
    from facebench.models.ict import load_ict
    m = load_ict(ICT_NPZ)
    au = torch.zeros(1, 27); au[0, AU_NAMES.index('AU26')] = 1
    sb = synthetic_batch(m, 1, SyntheticConfig(image_size=32), 0, au=au)
    assert float(sb.params.expression[0, m.expression_names.index('jawOpen')]) == 1
    assert float(sb.mask.mean()) > 0.1 and sb.landmarks.shape == (1, 68, 2)

# ------------------------------------------------------------------ image folder
def _write(folder, n=2, size=20, lmk_ext='.npy'):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f'im{i}.png')
        L = rng.uniform(0, size, (68, 2))
        if lmk_ext == '.npy': np.save(folder / f'im{i}.npy', L)
        else: np.savetxt(folder / f'im{i}.txt', L)
    return folder

def test_image_folder_reads_and_scales(tmp_path):
    f = _write(tmp_path / 'a', size=20)
    L0 = np.load(f / 'im0.npy')
    (f / 'aus.csv').write_text('image,AU1,AU12\nim0.png,3,0\nim1.png,0,5\n')
    ds = ImageFolderDataset(f, image_size=40, au_scale=5)
    it = ds[0]
    assert it['image'].shape == (3, 40, 40) and 0 <= float(it['image'].min()) and float(it['image'].max()) <= 1
    torch.testing.assert_close(it['landmarks'], torch.from_numpy(L0 * 2).float())
    assert float(it['au'][0]) == pytest.approx(0.6) and int(it['au_mask'].sum()) == 2 and it['au_mask'][AU_NAMES.index('AU12')]
    g = _write(tmp_path / 'b', size=16, lmk_ext='.txt')
    ds = ImageFolderDataset(g, image_size=16)
    torch.testing.assert_close(ds[1]['landmarks'], torch.from_numpy(np.loadtxt(g / 'im1.txt')).float())
    assert not ds[1]['au_mask'].any()
    raw = np.asarray(Image.open(g / 'im1.png'), dtype=np.float32) / 255
    torch.testing.assert_close(ds[1]['image'], torch.from_numpy(raw).permute(2, 0, 1))

def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope'): ImageFolderDataset(tmp_path / 'nope')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(InputError, match='holds no images'): ImageFolderDataset(tmp_path / 'empty')
    f = _write(tmp_path / 'f')
    (f / 'im1.npy').unlink()
    with pytest.raises(InputError, match='no landmarks for image im1'): ImageFolderDataset(f)
    np.save(f / 'im1.npy', np.zeros((5, 2)))
    with pytest.raises(InputError, match=r"expected \(68, 2\) landmarks, found shape \(5, 2\)"): ImageFolderDataset(f)
    np.save(f / 'im1.npy', np.zeros((68, 2)))
    for text, msg in (('name,AU1\nim0.png,1\n', "column 'image'"), ('image,AU99\nim0.png,1\n', 'AU99'), ('image,AU1\nzz.png,1\n', "'zz.png' is not in"),
                      ('image,AU1\nim0.png,x\n', 'is not a number'), ('image,AU1\nim0.png,3\n', 'outside [0,1]')):
        (f / 'aus.csv').write_text(text)
        with pytest.raises(InputError, match=msg.replace('[', r'\[').replace(']', r'\]').replace('(', r'\(')): ImageFolderDataset(f)
    (f / 'aus.csv').unlink()
    Image.fromarray(np.zeros((10, 12, 3), dtype=np.uint8)).save(f / 'im0.png')
    with pytest.raises(InputError, match='is 12x10; crop faces to squares'): ImageFolderDataset(f, 16)[0]

def test_builtin_head_au_components(head):
    m = head
    au = torch.zeros(1, 27); au[0, AU_NAMES.index('AU12')] = 0.6; au[0, AU_NAMES.index('AU26')] = 1.0
    w = au_to_expression(au, m)[0]
    names = list(m.expression_names)
    for i, n in enumerate(names):
        want = {'AU12': 0.6, 'AU26': 1.0}.get(n, 0.0)
        assert float(w[i]) == pytest.approx(want), n
    sb = synthetic_batch(m, 1, SyntheticConfig(image_size=32), 0, au=au)
    assert sb.params.jaw_pose.shape == (1, 3) and float(sb.mask.mean()) > 0.1
