"""AUFART networks: checkpoint key maps checked against an independent functional (torchvision-layout) ResNet +
OpenGraphAU / DECA forward pass written here from the public repositories' descriptions; attention and GAT layers
against their formulas; structural properties of the two heads; bad input."""
import math
import pytest, torch
import torch.nn.functional as F
from facebench.core import InputError
from facebench.aufart.nets import (AU_NAMES, SUB_AU_NAMES, SUB_AU_PARENTS, AUNet, AUNetConfig, Attention, Aufart, AufartConfig,
                                   AufartHeadConfig, DECA_PARAM_DIMS, GlobalEncoder, GlobalEncoderConfig, GraphAttention,
                                   ResNetSpec, au_names, check_image, head_dims, load_deca_encoder, load_opengraphau,
                                   make_head, read_state_dict, HEAD_VARIANTS)

SPEC = ResNetSpec.tiny()
G = torch.Generator().manual_seed(0)

def rnd(*shape): return torch.randn(*shape, generator=G, dtype=torch.float64)

# ------------------------------------------------------------------ independent torchvision-layout reference
def tv_resnet_state(spec, prefix):
    "Random state dict with torchvision ResNet key names (Bottleneck, expansion 4)."
    sd = {}
    def bn(name, c):
        sd[f'{prefix}{name}.weight'] = 1 + 0.1 * rnd(c); sd[f'{prefix}{name}.bias'] = 0.1 * rnd(c)
        sd[f'{prefix}{name}.running_mean'] = 0.1 * rnd(c); sd[f'{prefix}{name}.running_var'] = 0.5 + rnd(c).abs()
        sd[f'{prefix}{name}.num_batches_tracked'] = torch.tensor(7)
    sd[f'{prefix}conv1.weight'] = rnd(spec.embedding_size, 3, 7, 7) * 0.2; bn('bn1', spec.embedding_size)
    cin = spec.embedding_size
    for i, (cout, depth) in enumerate(zip(spec.hidden_sizes, spec.depths), 1):
        mid = cout // 4
        for j in range(depth):
            p = f'layer{i}.{j}.'
            sd[f'{prefix}{p}conv1.weight'] = rnd(mid, cin, 1, 1) / math.sqrt(cin); bn(p + 'bn1', mid)
            sd[f'{prefix}{p}conv2.weight'] = rnd(mid, mid, 3, 3) / math.sqrt(9 * mid); bn(p + 'bn2', mid)
            sd[f'{prefix}{p}conv3.weight'] = rnd(cout, mid, 1, 1) / math.sqrt(mid); bn(p + 'bn3', cout)
            stride = 2 if (j == 0 and i > 1) else 1
            if j == 0 and (stride != 1 or cin != cout):
                sd[f'{prefix}{p}downsample.0.weight'] = rnd(cout, cin, 1, 1) / math.sqrt(cin); bn(p + 'downsample.1', cout)
            cin = cout
    return sd

def ref_bn(x, sd, name):
    return F.batch_norm(x, sd[name + '.running_mean'], sd[name + '.running_var'], sd[name + '.weight'], sd[name + '.bias'],
                        training=False, eps=1e-5)

def ref_resnet(x, sd, spec, prefix):
    "torchvision ResNet forward (eval) from a state dict: returns the last feature map (B,C,h,w)."
    x = F.relu(ref_bn(F.conv2d(x, sd[prefix + 'conv1.weight'], stride=2, padding=3), sd, prefix + 'bn1'))
    x = F.max_pool2d(x, 3, 2, 1)
    for i, depth in enumerate(spec.depths, 1):
        for j in range(depth):
            p = f'{prefix}layer{i}.{j}.'
            stride = 2 if (j == 0 and i > 1) else 1
            y = F.relu(ref_bn(F.conv2d(x, sd[p + 'conv1.weight']), sd, p + 'bn1'))
            y = F.relu(ref_bn(F.conv2d(y, sd[p + 'conv2.weight'], stride=stride, padding=1), sd, p + 'bn2'))
            y = ref_bn(F.conv2d(y, sd[p + 'conv3.weight']), sd, p + 'bn3')
            sc = ref_bn(F.conv2d(x, sd[p + 'downsample.0.weight'], stride=stride), sd, p + 'downsample.1') if p + 'downsample.0.weight' in sd else x
            x = F.relu(y + sc)
    return x

def linear_block_state(sd, name, cin, cout):
    sd[name + '.fc.weight'] = rnd(cout, cin) / math.sqrt(cin); sd[name + '.fc.bias'] = 0.1 * rnd(cout)
    sd[name + '.bn.weight'] = 1 + 0.1 * rnd(cout); sd[name + '.bn.bias'] = 0.1 * rnd(cout)
    sd[name + '.bn.running_mean'] = 0.1 * rnd(cout); sd[name + '.bn.running_var'] = 0.5 + rnd(cout).abs()
    sd[name + '.bn.num_batches_tracked'] = torch.tensor(3)

def ref_linear_block(x, sd, name):  # (B,N,C)
    y = F.linear(x, sd[name + '.fc.weight'], sd[name + '.fc.bias'])
    return F.relu(ref_bn(y.transpose(1, 2), sd, name + '.bn')).transpose(1, 2)

def opengraphau_state(spec, D, n_sub=14):
    sd = tv_resnet_state(spec, 'backbone.')
    C = spec.hidden_sizes[-1]
    sd['backbone.fc.weight'] = rnd(1000, C); sd['backbone.fc.bias'] = rnd(1000)
    linear_block_state(sd, 'global_linear', C, D)
    for i in range(27): linear_block_state(sd, f'head.main_class_linears.{i}', D, D)
    for n in ('U', 'V'): sd[f'head.gnn.{n}.weight'] = rnd(D, D) / math.sqrt(D); sd[f'head.gnn.{n}.bias'] = 0.1 * rnd(D)
    sd['head.gnn.bnv.weight'] = 1 + 0.1 * rnd(27); sd['head.gnn.bnv.bias'] = 0.1 * rnd(27)
    sd['head.gnn.bnv.running_mean'] = 0.1 * rnd(27); sd['head.gnn.bnv.running_var'] = 0.5 + rnd(27).abs()
    sd['head.gnn.bnv.num_batches_tracked'] = torch.tensor(1)
    sd['head.main_sc'] = rnd(27, D)
    if n_sub: sd['head.sub_sc'] = rnd(n_sub, D)
    return sd

def ref_opengraphau(img, sd, spec, n_sub=14):
    "OpenGraphAU stage-1 (ANFL) forward from its state dict, following the repository's description."
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=img.dtype).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=img.dtype).view(1, 3, 1, 1)
    fm = ref_resnet((img - mean) / std, sd, spec, 'backbone.')
    x = fm.flatten(2).permute(0, 2, 1)
    x = ref_linear_block(x, sd, 'global_linear')
    f_v = torch.stack([ref_linear_block(x, sd, f'head.main_class_linears.{i}').mean(1) for i in range(27)], 1)
    # dynamic graph: each node's 4 largest dot products, A normalised by out-degree^-1/2 on both sides
    si = f_v @ f_v.transpose(1, 2)
    B, n, _ = si.shape
    A = torch.zeros_like(si)
    for b in range(B):
        for i in range(n):
            kth = torch.sort(si[b, i], descending=True).values[3]
            A[b, i] = (si[b, i] >= kth).to(si.dtype)
    dinv = torch.diag_embed(A.sum(-1) ** -0.5)
    An = dinv @ A @ dinv
    agg = An @ F.linear(f_v, sd['head.gnn.V.weight'], sd['head.gnn.V.bias'])
    v = F.relu(f_v + ref_bn(agg + F.linear(f_v, sd['head.gnn.U.weight'], sd['head.gnn.U.bias']), sd, 'head.gnn.bnv'))
    sc = F.normalize(F.relu(sd['head.main_sc']), dim=-1)
    main = torch.stack([F.cosine_similarity(v[:, i], sc[i][None].expand(B, -1), dim=-1) for i in range(27)], 1)
    if not n_sub: return F.normalize(f_v, dim=-1), main
    subs = []
    for i, parent in enumerate([0, 1, 2, 4, 7, 8, 11]):
        for s in (2 * i, 2 * i + 1):
            w = F.normalize(F.relu(sd['head.sub_sc'][s]), dim=-1)
            subs.append((F.normalize(v[:, parent], dim=-1) * w).sum(-1))
    return F.normalize(f_v, dim=-1), torch.cat([main, torch.stack(subs, 1)], 1)

# ------------------------------------------------------------------ AU names
def test_au_names():
    assert len(AU_NAMES) == 27 and AU_NAMES[9] == 'AU12' and AU_NAMES[22] == 'AU26'
    assert SUB_AU_NAMES[:4] == ('AUL1', 'AUR1', 'AUL2', 'AUR2') and SUB_AU_NAMES[-2:] == ('AUL14', 'AUR14')
    # OpenGraphAU's sub_list [0,1,2,4,7,8,11]: the AU12 pair is scored on node 8 (AU11), as its code does
    assert [AU_NAMES[p] for p in SUB_AU_PARENTS] == ['AU1', 'AU2', 'AU4', 'AU6', 'AU10', 'AU11', 'AU14']
    assert len(au_names(0)) == 27
    with pytest.raises(InputError, match='n_sub'): au_names(5)

# ------------------------------------------------------------------ OpenGraphAU mapping
@pytest.mark.parametrize('n_sub', [14, 0])
def test_opengraphau_checkpoint_matches_reference(tmp_path, n_sub):
    cfg = AUNetConfig(SPEC, n_sub=n_sub, image_size=32)
    sd = opengraphau_state(SPEC, cfg.dim, n_sub)
    path = tmp_path / 'OpenGprahAU-ResNet50_first_stage.pth'
    torch.save({'epoch': 3, 'state_dict': {'module.' + k: v for k, v in sd.items()}}, path)   # DataParallel + wrapper
    net = AUNet(cfg).double().eval()
    rep = load_opengraphau(net, path)
    assert rep.ignored == ['backbone.fc.bias', 'backbone.fc.weight'] or sorted(rep.ignored) == ['backbone.fc.bias', 'backbone.fc.weight']
    assert not rep.missing and not rep.unexpected
    img = torch.rand(2, 3, 32, 32, generator=G, dtype=torch.float64)
    out = net(img)
    ref_feat, ref_au = ref_opengraphau(img, sd, SPEC, n_sub)
    assert out.au.shape == (2, 27 + n_sub)
    torch.testing.assert_close(out.features, ref_feat, atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(out.au, ref_au, atol=1e-9, rtol=1e-7)

def test_opengraphau_bad_checkpoints(tmp_path):
    cfg = AUNetConfig(SPEC, image_size=32)
    sd = opengraphau_state(SPEC, cfg.dim)
    net = AUNet(cfg).double()
    bad = dict(sd); bad.pop('head.main_sc'); bad.pop('backbone.layer1.0.conv2.weight'); bad['head.edge_extractor.x'] = torch.zeros(2)
    with pytest.raises(InputError) as e: load_opengraphau(net, bad)
    msg = str(e.value)
    assert 'main_sc' in msg and 'encoder.stages.0.layers.0.layer.1.convolution.weight' in msg and 'head.edge_extractor.x' in msg
    rep = load_opengraphau(net, bad, strict=False)
    assert 'main_sc' in rep.missing and rep.unexpected == ['head.edge_extractor.x']
    assert torch.equal(net.au_linears[3].fc.weight, sd['head.main_class_linears.3.fc.weight'])
    wrong = dict(sd); wrong['head.sub_sc'] = torch.zeros(10, cfg.dim)
    with pytest.raises(InputError, match=r'head.sub_sc -> sub_sc: checkpoint \(10, 8\), module \(14, 8\)'): load_opengraphau(net, wrong)
    with pytest.raises(FileNotFoundError, match='nothere.pth'): load_opengraphau(net, tmp_path / 'nothere.pth')
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(InputError, match='cannot read OpenGraphAU checkpoint'): load_opengraphau(net, tmp_path / 'junk.pth')
    with pytest.raises(InputError, match='non-tensor'): read_state_dict({'a': 1}, 'X')

# ------------------------------------------------------------------ DECA mapping
def test_deca_checkpoint_matches_reference(tmp_path):
    cfg = GlobalEncoderConfig(SPEC, hidden=24, image_size=32)
    sd = tv_resnet_state(SPEC, 'encoder.')
    C, n = SPEC.hidden_sizes[-1], sum(d for _, d in DECA_PARAM_DIMS)
    sd['layers.0.weight'] = rnd(24, C) / math.sqrt(C); sd['layers.0.bias'] = rnd(24)
    sd['layers.2.weight'] = rnd(n, 24) / 5; sd['layers.2.bias'] = rnd(n)
    path = tmp_path / 'deca_model.tar'
    torch.save({'E_flame': sd, 'E_detail': {'x': torch.zeros(1)}}, path)
    enc = GlobalEncoder(cfg).double().eval()
    rep = load_deca_encoder(enc, path)
    assert not rep.missing and not rep.unexpected and not rep.ignored
    img = torch.rand(2, 3, 32, 32, generator=G, dtype=torch.float64)
    out = enc(img)
    feat = ref_resnet(img, sd, SPEC, 'encoder.').mean((2, 3))
    code = F.linear(F.relu(F.linear(feat, sd['layers.0.weight'], sd['layers.0.bias'])), sd['layers.2.weight'], sd['layers.2.bias'])
    torch.testing.assert_close(out.feature, feat, atol=1e-9, rtol=1e-7)
    # DECA's decompose_code: shape 100, tex 50, exp 50, pose 6, cam 3, light 27 -> (9,3)
    torch.testing.assert_close(out.params['exp'], code[:, 150:200])
    torch.testing.assert_close(out.params['cam'], code[:, 206:209])
    torch.testing.assert_close(out.params['light'], code[:, 209:236].reshape(2, 9, 3))
    bad = dict(sd); bad.pop('layers.2.bias')
    with pytest.raises(InputError, match=r'missing keys \[head.2.bias\]'): load_deca_encoder(enc, bad)

# ------------------------------------------------------------------ attention blocks
def test_attention_formula():
    torch.manual_seed(1)
    att = Attention(6, heads=2, dim_head=3).double()
    x, c = torch.randn(2, 4, 6, dtype=torch.float64), torch.randn(2, 5, 6, dtype=torch.float64)
    q = x @ att.to_q.weight.T
    k, v = (c @ att.to_kv.weight.T).split(6, -1)
    outs = []
    for h in range(2):
        s = slice(3 * h, 3 * h + 3)
        w = torch.softmax(q[..., s] @ k[..., s].transpose(1, 2) / math.sqrt(3), -1)
        outs.append(w @ v[..., s])
    ref = torch.cat(outs, -1) @ att.to_out.weight.T + att.to_out.bias
    torch.testing.assert_close(att(x, c), ref)

def test_graph_attention_uniform_when_a_is_zero():
    gat = GraphAttention(5, 4, concat=True).double()
    with torch.no_grad(): gat.a.zero_()
    h = torch.randn(2, 7, 5, dtype=torch.float64)
    Wh = h @ gat.W
    torch.testing.assert_close(gat(h), F.elu(Wh.mean(1, keepdim=True).expand(-1, 7, -1)))
    adj = torch.eye(7)   # only self loops: each node keeps its own transform
    torch.testing.assert_close(gat(h, adj), F.elu(Wh))

# ------------------------------------------------------------------ heads
def _inputs(B=2, dtype=torch.float64):
    return F.normalize(torch.randn(B, 27, 8, dtype=dtype), dim=-1), torch.randn(B, 32, dtype=dtype)

def test_paper_head_queries_are_au_tokens():
    torch.manual_seed(0)
    au, gf = _inputs()
    for sa in (True, False):
        h = make_head(AufartHeadConfig.tiny(n_expression=7, self_attention=sa)).double()
        with torch.no_grad(): h.out.weight.normal_()   # a visible output layer
        o = h(au, gf)
        assert o.expression.shape == (2, 7) and o.jaw_pose.shape == (2, 3) and o.camera.shape == (2, 3)
        au2 = au.clone(); au2[:, 5] = -au2[:, 5]
        gf2 = gf + 1.0
        d_au = (h(au2, gf).expression - o.expression).abs().max()
        d_g = (h(au, gf2).expression - o.expression).abs().max()
        assert d_g > 1e-6   # the [REG] token always reads the global tokens through cross-attention
        # without self-attention the [REG] query never sees the AU tokens: AU features are queries, not keys
        assert (d_au > 1e-6) if sa else (d_au < 1e-12)

def test_code_head_outputs_and_zero_init():
    torch.manual_seed(0)
    au, gf = _inputs()
    h = make_head(AufartHeadConfig.tiny(variant='code', n_expression=50, n_camera=0)).double()
    o = h(au, gf)
    assert o.expression.shape == (2, 50) and o.jaw_pose.shape == (2, 3) and o.camera.shape == (2, 0)
    assert torch.equal(o.expression, torch.zeros_like(o.expression)) and torch.equal(o.jaw_pose, torch.zeros_like(o.jaw_pose))
    for variant in HEAD_VARIANTS:   # every head starts exactly at psi = 0 (the zero-expression baseline) and no camera change
        o = make_head(AufartHeadConfig.tiny(variant=variant, n_expression=5)).double()(au, gf)
        assert o.expression.abs().max() == 0 and o.camera.abs().max() == 0
    with pytest.raises(InputError, match="must be one of"): make_head(AufartHeadConfig.tiny(variant='x'))

class _M:
    def __init__(self, E, joints): self.n_expression, self.joint_names = E, joints

def test_aufart_model_dims_frozen_and_dtypes():
    flame_like, ict_like = _M(50, ['global', 'neck', 'jaw', 'eye_left', 'eye_right']), _M(53, ['global'])
    assert head_dims(flame_like) == dict(n_expression=50, n_jaw=3) and head_dims(ict_like) == dict(n_expression=53, n_jaw=0)
    for variant in ('paper', 'code'):
        net = Aufart(AufartConfig.for_model(ict_like, variant, preset='tiny'))
        img = torch.rand(2, 3, 32, 32)
        o = net(img)
        assert o.expression.shape == (2, 53) and o.jaw_pose.shape == (2, 0) and o.au.shape == (2, 41)
        (o.expression - 1).square().sum().backward()   # the output layer starts at zero: use a non-zero target
        assert all(p.grad is None for p in net.au_net.parameters()) and all(p.grad is None for p in net.encoder.parameters())
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.head.parameters())
        net.train(); assert not net.au_net.training and not net.encoder.training and net.head.training
        o64 = net.double()(img.double())
        assert o64.expression.dtype == torch.float64

def test_bad_images_and_configs():
    with pytest.raises(InputError, match='3, None, None'): check_image(torch.rand(1, 1, 32, 32))
    with pytest.raises(InputError, match='32x32'): check_image(torch.rand(1, 3, 31, 32), size=32)
    with pytest.raises(InputError, match=r'found range \[-0.4'): check_image(torch.rand(1, 3, 8, 8) - 0.5)
    with pytest.raises(InputError, match='float'): check_image(torch.ones(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(InputError, match='head sizes'):
        AufartConfig(AUNetConfig.tiny(), GlobalEncoderConfig.tiny(), AufartHeadConfig())
    with pytest.raises(InputError, match='image_size'):
        AufartConfig(AUNetConfig.tiny(32), GlobalEncoderConfig.tiny(64), AufartHeadConfig.tiny())
    h = make_head(AufartHeadConfig.tiny())
    with pytest.raises(InputError, match='global_feature'): h(torch.rand(2, 27, 8), torch.rand(3, 32))

def test_global_baseline_head_ignores_au_features():
    torch.manual_seed(0)
    au, gf = _inputs()
    h = make_head(AufartHeadConfig.tiny(variant='global', n_expression=5, n_camera=0)).double()
    with torch.no_grad(): h.out.weight.normal_()
    o = h(au, gf)
    assert o.expression.shape == (2, 5) and torch.equal(h(-au, gf).expression, o.expression)
    assert (h(au, gf + 1).expression - o.expression).abs().max() > 1e-6

def test_small_preset_sizes():
    class M: n_expression, joint_names = 24, ['global', 'neck', 'jaw', 'eye_left', 'eye_right']
    cfg = AufartConfig.for_model(M(), 'paper', preset='small')
    assert cfg.image_size == 64 and cfg.au_net.dim == 16 and cfg.head.global_dim == 64
    o = Aufart(cfg).eval()(torch.rand(2, 3, 64, 64))
    assert o.au_features.shape == (2, 27, 16) and o.global_feature.shape == (2, 64) and o.expression.shape == (2, 24)
    with pytest.raises(InputError, match='preset'): AufartConfig.for_model(M(), 'paper', preset='huge')
    with pytest.raises(InputError, match="preset='tiny'"): AufartConfig.for_model(M(), 'paper', tiny=True)   # one setting, not two

# ------------------------------------------------------------------ EMOCA emotion network
def emoca_state(spec, wrap=True, aufart_names=False):
    "A state dict in EMOCA's emotion-recognition names, random values: backbone.<torchvision>, backbone.fc (face-id), linear."
    sd = tv_resnet_state(spec, 'backbone.')
    C = spec.hidden_sizes[-1]
    sd['backbone.fc.weight'] = rnd(8631, C); sd['backbone.fc.bias'] = rnd(8631)
    lin = 'linear.0.' if aufart_names else 'linear.'
    sd[lin + 'weight'] = rnd(10, C); sd[lin + 'bias'] = rnd(10)
    return {'state_dict': sd, 'epoch': 1} if wrap else sd

def ref_emoca_layout(x, sd, spec, prefix):
    "EMOCA's own ResNet (VGGFace2 layout): stride in the first 1x1 conv, unpadded ceil-mode max-pool."
    x = F.relu(ref_bn(F.conv2d(x, sd[prefix + 'conv1.weight'], stride=2, padding=3), sd, prefix + 'bn1'))
    x = F.max_pool2d(x, 3, 2, 0, ceil_mode=True)
    for i, depth in enumerate(spec.depths, 1):
        for j in range(depth):
            p = f'{prefix}layer{i}.{j}.'
            stride = 2 if (j == 0 and i > 1) else 1
            y = F.relu(ref_bn(F.conv2d(x, sd[p + 'conv1.weight'], stride=stride), sd, p + 'bn1'))
            y = F.relu(ref_bn(F.conv2d(y, sd[p + 'conv2.weight'], padding=1), sd, p + 'bn2'))
            y = ref_bn(F.conv2d(y, sd[p + 'conv3.weight']), sd, p + 'bn3')
            sc = ref_bn(F.conv2d(x, sd[p + 'downsample.0.weight'], stride=stride), sd, p + 'downsample.1') if p + 'downsample.0.weight' in sd else x
            x = F.relu(y + sc)
    return x

def test_emotion_net_loads_emoca_checkpoint(tmp_path):
    from facebench.aufart.nets import EmotionNet, EmotionNetConfig, load_emotion_net
    ck = emoca_state(SPEC)
    torch.save(ck, tmp_path / 'emoca.ckpt')
    x = torch.rand(2, 3, 48, 48, generator=G, dtype=torch.float64)
    for layout, ref in ((False, ref_resnet), (True, ref_emoca_layout)):
        net = EmotionNet(EmotionNetConfig(SPEC, input_size=64, emoca_layout=layout)).double().eval()
        rep = load_emotion_net(net, tmp_path / 'emoca.ckpt')
        assert not rep.missing and not rep.unexpected and rep.ignored == ['backbone.fc.weight', 'backbone.fc.bias']
        want = ref(F.interpolate(x, size=(64, 64), mode='bilinear', align_corners=False), ck['state_dict'], SPEC, 'backbone.').mean((2, 3))
        torch.testing.assert_close(net(x), want)
        torch.testing.assert_close(net.linear.weight, ck['state_dict']['linear.weight'])
    # AUFART's code renames linear.* to linear.0.*: accepted too
    net = EmotionNet(EmotionNetConfig(SPEC, input_size=32)).double()
    assert not load_emotion_net(net, emoca_state(SPEC, wrap=False, aufart_names=True)).missing

def test_emotion_net_bad_checkpoints(tmp_path):
    from facebench.aufart.nets import EmotionNet, EmotionNetConfig, load_emotion_net
    net = EmotionNet(EmotionNetConfig(SPEC, input_size=32)).double()
    sd = emoca_state(SPEC, wrap=False)
    sd.pop('backbone.layer1.0.conv2.weight'); sd['head.extra.weight'] = torch.zeros(1)
    with pytest.raises(InputError, match=r'missing keys \[backbone.encoder.stages.0.layers.0.layer.1.convolution.weight\]'):
        load_emotion_net(net, sd)
    with pytest.raises(InputError, match='head.extra.weight'): load_emotion_net(net, sd)
    rep = load_emotion_net(net, sd, strict=False)
    assert rep.unexpected == ['head.extra.weight'] and len(rep.missing) == 1
    big = emoca_state(ResNetSpec(8, (16, 16, 32, 64), (1, 1, 1, 1)), wrap=False)
    with pytest.raises(InputError, match='does not fit'): load_emotion_net(net, big)
    with pytest.raises(FileNotFoundError, match='EMOCA emotion checkpoint'): load_emotion_net(net, tmp_path / 'none.ckpt')
    with pytest.raises(InputError, match='must hold values in'): net(torch.full((1, 3, 8, 8), 2.0, dtype=torch.float64))
