"""N2FNet network: presets and module shapes against the paper, the camera parametrisation against a hand-written
pinhole, input checks, local pretrained loading (offline), gradients."""
import os
os.environ['HF_HUB_OFFLINE'] = '1'          # never reach the hub from tests
os.environ['TRANSFORMERS_OFFLINE'] = '1'
from pathlib import Path
import pytest
import torch
from facebench.core import InputError
from facebench.models.builtin import builtin_head
from facebench.synth import SyntheticFaces, SynthConfig
from facebench.rotations import euler_to_matrix
from facebench.n2f.model import (N2FNet, N2FConfig, ParamLayout, dinov3_config, decode_camera, encode_camera, make_input,
                                 check_normal_map, build_backbone, count_parameters, BACKBONE_PRESETS)

ICT = Path('/work/shared/assets/ict-facekit/ict_facekit_light.npz')
TINY = N2FConfig(backbone='vit_tiny', image_size=32)

@pytest.fixture(scope='module')
def head():
    return builtin_head(n_vertices=500, n_shape=8, n_expression=6)

@pytest.fixture(scope='module')
def batch(head):
    return SyntheticFaces(head, SynthConfig(image_size=32, batch_size=2), seed=0).batch(0)

def test_presets_match_the_paper_and_dinov3_sizes():
    c = dinov3_config('vit_l16')
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size, c.patch_size) == (1024, 24, 16, 4096, 16)
    assert dinov3_config('vit_b16').hidden_size == 768 and dinov3_config('vit_s16').hidden_size == 384
    n = count_parameters(ParamLayout(300, 6, 100, 2), N2FConfig())
    assert 300e6 < n < 360e6                      # ViT-L/16 (~300M) + two d=1024 modules
    assert N2FConfig().head_heads == 16 and N2FConfig().head_ffn_mult == 4 and N2FConfig().input == 'normal'

def test_modules_have_the_paper_form(head):
    net = N2FNet(head, TINY)
    d = net.hidden_size
    for m, out in ((net.flame_module, net.layout.dim), (net.camera_module, 9)):
        blk = m.block
        assert isinstance(blk, torch.nn.TransformerEncoderLayer) and blk.self_attn.num_heads == 16
        assert blk.linear1.out_features == 4 * d and blk.activation is torch.nn.functional.gelu
        assert m.mlp[-1].out_features == out
    assert net.layout == ParamLayout(8, 6, 6, 2)

def test_layout_from_models(head):
    if ICT.exists():
        from facebench.models.ict import load_ict
        assert ParamLayout.from_model(load_ict(str(ICT))) == ParamLayout(100, 0, 53, 0)
    lay = ParamLayout.from_model(builtin_head(n_vertices=500, n_shape=3, n_expression=2))
    assert lay.dim == 3 + 6 + 2 + 2
    parts = lay.split(torch.arange(lay.dim, dtype=torch.float32)[None])
    assert parts['jaw'].tolist() == [[3, 4, 5, 6, 7, 8]] and parts['eyelids'].tolist() == [[11, 12]]

def test_camera_decoding_against_a_pinhole():
    g = torch.Generator().manual_seed(1)
    B, S = 4, 256
    R = torch.diag(torch.tensor([1., -1., -1.], dtype=torch.float64)) @ euler_to_matrix(torch.randn(B, 3, generator=g, dtype=torch.float64) * 20)
    t = torch.cat([torch.randn(B, 2, generator=g, dtype=torch.float64) * 2, 80 + 40 * torch.rand(B, 1, generator=g, dtype=torch.float64)], 1)
    f = 1000 + 500 * torch.rand(B, 2, generator=g, dtype=torch.float64)
    c = 100 + 50 * torch.rand(B, 2, generator=g, dtype=torch.float64)
    raw = encode_camera(R, t, f, c, S, units=100.0)
    R2, t2 = decode_camera(raw, f, c, S, units=100.0)
    torch.testing.assert_close(R2, R); torch.testing.assert_close(t2, t)
    # meaning of the raw output: a, b give where the origin lands and the apparent scale f/t_z
    uv = t[:, :2] / t[:, 2:] * f + c
    torch.testing.assert_close(raw[:, 6:8], uv / (S / 2) - 1)
    torch.testing.assert_close(torch.exp(raw[:, 8]), f[:, 0] / t[:, 2] * 0.2 * 100 / S)
    # zero output: frontal, origin at the image centre, 0.2 m spans the image
    R0, t0 = decode_camera(torch.zeros(1, 9, dtype=torch.float64), f[:1], c[:1], S, units=1.0)
    torch.testing.assert_close(R0[0], torch.diag(torch.tensor([1., -1., -1.], dtype=torch.float64)))
    X = torch.tensor([[-0.1, 0, 0], [0.1, 0, 0], [0, 0, 0]], dtype=torch.float64) @ R0[0].T + t0
    u = X[:, 0] / X[:, 2] * f[0, 0] + c[0, 0]
    torch.testing.assert_close(u[1] - u[0], torch.tensor(float(S), dtype=torch.float64))
    torch.testing.assert_close(u[2], torch.tensor(S / 2, dtype=torch.float64))

def test_input_modes_and_checks(batch):
    n, m, uv = batch.normal, batch.face_mask, batch.uv
    assert make_input('normal', n, m).shape[1] == 3 and make_input('uv', n, m, uv).shape[1] == 2 and make_input('uv_normal', n, m, uv).shape[1] == 5
    x = make_input('normal', n, m)
    assert (x[m.expand_as(x) == 0] == 0).all() and torch.equal(x[m.expand_as(x) > 0], n[m.expand_as(n) > 0])
    assert torch.equal(make_input('normal_noseg', n, m), n)
    u = make_input('uv', n, m, uv)
    assert u.min() >= -1 and u.max() <= 1
    with pytest.raises(InputError, match='8-bit'): check_normal_map(n * 127.5 + 127.5)
    with pytest.raises(InputError, match='RGB-encoded'): check_normal_map((n + 1) / 2 * batch.mask)
    with pytest.raises(InputError, match='not unit length'): check_normal_map(n * 0.5)
    with pytest.raises(InputError, match='needs `uv`'): make_input('uv_normal', n, m)
    with pytest.raises(InputError, match='input mode'): make_input('depth', n, m)
    with pytest.raises(InputError, match='H=16'): make_input('normal', n, m[..., :16, :16])

def test_forward_shapes_prior_and_gradients(head, batch):
    torch.manual_seed(0)
    net = N2FNet(head, TINY)
    x = make_input('normal', batch.normal, batch.face_mask)
    out = net(x, batch.camera.focal, batch.camera.principal)
    assert out.omega.shape == (2, 22) and out.camera_rotation.shape == (2, 3, 3)
    torch.testing.assert_close(out.jaw6d, torch.tensor([[1., 0, 0, 0, 1, 0]] * 2))
    p = out.params()
    assert p.jaw_pose.shape == (2, 3) and p.camera_translation.shape == (2, 3)
    (out.omega.sum() + out.camera_translation.sum()).backward()
    # zero-initialised last layers: gradients reach them first
    assert net.flame_module.mlp[-1].weight.grad.abs().sum() > 0 and net.camera_module.mlp[-1].weight.grad.abs().sum() > 0
    with pytest.raises(InputError, match='`x` must have shape'): net(torch.zeros(1, 3, 48, 48))
    with pytest.raises(InputError, match='`x` must have shape'): net(torch.zeros(1, 5, 32, 32))
    with pytest.raises(InputError, match='multiple of the patch size'): N2FConfig(image_size=250)
    with pytest.raises(InputError, match='backbone must be one of'): N2FConfig(backbone='vit_h14')

def test_float64(head, batch):
    net = N2FNet(head, TINY).double()
    out = net(make_input('normal', batch.normal.double(), batch.face_mask.double()), batch.camera.focal.double(), batch.camera.principal.double())
    assert out.omega.dtype == torch.float64 and out.camera_translation.dtype == torch.float64

def test_pretrained_from_a_local_directory(tmp_path, head):
    from transformers import DINOv3ViTModel
    torch.manual_seed(3)
    src = DINOv3ViTModel(dinov3_config('vit_tiny', 3, 32))
    src.save_pretrained(tmp_path / 'dino')
    net = N2FNet(head, N2FConfig(backbone='vit_tiny', image_size=32, pretrained=str(tmp_path / 'dino')))
    sd, sd2 = src.state_dict(), net.backbone.state_dict()
    assert all(torch.equal(sd[k], sd2[k]) for k in sd)
    # 5-channel input: pretrained filters on the first 3 channels, their mean on the others
    net5 = N2FNet(head, N2FConfig(backbone='vit_tiny', image_size=32, pretrained=str(tmp_path / 'dino'), input='uv_normal'))
    w, w5 = src.embeddings.patch_embeddings.weight, net5.patch_embedding().weight
    assert w5.shape[1] == 5 and torch.equal(w5[:, :3], w) and torch.allclose(w5[:, 3], w.mean(1))
    with pytest.raises(FileNotFoundError, match='not found locally'):
        build_backbone(N2FConfig(backbone='vit_tiny', pretrained=str(tmp_path / 'missing')))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(InputError, match='no config.json'):
        build_backbone(N2FConfig(backbone='vit_tiny', pretrained=str(tmp_path / 'empty')))

def test_random_init_needs_no_network():
    assert os.environ['HF_HUB_OFFLINE'] == '1'
    b = build_backbone(TINY)
    assert b.config.hidden_size == BACKBONE_PRESETS['vit_tiny']['hidden_size']
