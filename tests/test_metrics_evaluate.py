"""`facebench eval` (run_eval / add_eval_parser / main_eval) on tiny synthetic folders."""
import argparse, csv
from pathlib import Path
import numpy as np
import pytest
import torch
from facebench.core import InputError
from facebench.io import write_obj
from facebench.render.raster import sphere_mesh
from facebench.rotations import axis_angle_to_matrix
from facebench.metrics.datasets import DatasetError
from facebench.metrics.evaluate import EvalConfig, run_eval, add_eval_parser, main_eval

def parse(argv):
    p = argparse.ArgumentParser(); add_eval_parser(p.add_subparsers(dest='command'))
    return p.parse_args(argv)

def test_mesh_protocol_csv_markdown_plots_and_missing(tmp_path, capsys):
    v, f = sphere_mesh(10, 20, dtype=torch.float64)
    (tmp_path / 'gt/sub').mkdir(parents=True); (tmp_path / 'pred/sub').mkdir(parents=True)
    write_obj(tmp_path / 'gt/sub/a.obj', 100 * v, f); write_obj(tmp_path / 'pred/sub/a.obj', 0.102 * v, f)   # pred in m, GT in mm
    write_obj(tmp_path / 'gt/b.obj', 100 * v, f)                                                          # no prediction
    np.savez(tmp_path / 'regions.npz', top=np.nonzero(v[:, 1].numpy() > 0)[0])
    args = parse(['eval', '--pred', str(tmp_path / 'pred'), '--gt', str(tmp_path / 'gt'), '--out', str(tmp_path / 'out'), '--gt-units', 'mm',
                  '--align', 'none', '--regions', str(tmp_path / 'regions.npz'), '--plots', '--quiet'])
    assert main_eval(args) == 0
    assert '1 (1 without prediction)' in capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / 'out/results.csv')))
    assert [r['subject'] for r in rows] == ['sub/a', 'mean', 'median']
    assert 1.9 < float(rows[0]['cd_mm']) <= 2.0 and 'top/cd_mm' in rows[0]
    md = (tmp_path / 'out/results.md').read_text()
    assert '| subject | cd_mm |' in md and '| mean |' in md
    assert (tmp_path / 'out/cumulative_error.png').stat().st_size > 1000
    assert (tmp_path / 'out/heatmaps/sub__a.html').stat().st_size > 10000

def test_now_protocol_on_a_synthetic_folder(tmp_path):
    v, f = sphere_mesh(20, 40, dtype=torch.float64)
    scan = v * torch.tensor([80., 100., 70.], dtype=torch.float64)
    lm = [10, 40, 70, 100, 300, 500, 530]
    (tmp_path / 'now/scans/S1').mkdir(parents=True); (tmp_path / 'now/scans_lmks_onlypp/S1').mkdir(parents=True)
    write_obj(tmp_path / 'now/scans/S1/S1.obj', scan, f)
    (tmp_path / 'now/scans_lmks_onlypp/S1/S1.pp').write_text(''.join(f'<point x="{x}" y="{y}" z="{z}"/>\n' for x, y, z in scan[lm].tolist()))
    (tmp_path / 'now/imagepathsvalidation.txt').write_text('S1/multiview_neutral/IMG_1.jpg\nS1/selfie/IMG_2.jpg\n')
    R = axis_angle_to_matrix(torch.tensor([0.1, 0.2, 0.0], dtype=torch.float64))
    pred = scan / 1000 @ R.T
    (tmp_path / 'pred/S1/multiview_neutral').mkdir(parents=True)
    write_obj(tmp_path / 'pred/S1/multiview_neutral/IMG_1.obj', pred, f)
    np.save(tmp_path / 'pred/S1/multiview_neutral/IMG_1.npy', pred[lm].numpy())
    res = run_eval(EvalConfig(tmp_path / 'pred', tmp_path / 'now', tmp_path / 'out', protocol='now', progress=False))
    assert len(res.rows) == 1 and res.missing == ['S1/selfie/IMG_2.jpg']
    assert res.summary['pooled']['mean'] < 1e-5
    assert 'pooled' in (tmp_path / 'out/results.md').read_text()

def test_eval_errors(tmp_path):
    with pytest.raises(InputError, match='not a directory'): EvalConfig(tmp_path / 'x', tmp_path, tmp_path / 'o')
    with pytest.raises(InputError, match='protocol'): EvalConfig(tmp_path, tmp_path, tmp_path / 'o', protocol='flame')
    with pytest.raises(DatasetError, match='no GT mesh'): run_eval(EvalConfig(tmp_path, tmp_path, tmp_path / 'o', progress=False))
    with pytest.raises(InputError, match='realy-keypoints'): EvalConfig(tmp_path, tmp_path, tmp_path / 'o', protocol='realy', progress=False)
    with pytest.raises(InputError, match='not a file'): EvalConfig(tmp_path, tmp_path, tmp_path / 'o', protocol='realy', keypoints=tmp_path / 'no.txt')
    with pytest.raises(SystemExit): parse(['eval', '--pred', 'a', '--gt', 'b', '--out', 'c', '--protocol', 'x'])

def realy_fixture(root, subjects=('1', '2', '3'), seed=0):
    "A tiny REALY folder: an ellipsoid 'scan', 4 region patches, 85 barycentric keypoints drawn inside the regions."
    from facebench.metrics.protocols import REALY_KEYPOINTS
    v, f = sphere_mesh(20, 40, dtype=torch.float64)
    v = v * torch.tensor([80., 100., 70.], dtype=torch.float64)
    g = np.random.default_rng(seed)
    centres = {'nose': (0, 0, 80), 'mouth': (0, -50, 60), 'forehead': (0, 60, 60), 'cheek': (45, -20, 55)}
    near = {k: (v - torch.tensor(c, dtype=torch.float64)).norm(dim=-1) < 30 for k, c in centres.items()}
    face_in = {k: np.nonzero(m[f].all(1).numpy())[0] for k, m in near.items()}
    fi = g.integers(0, f.shape[0], 85)
    for region, sets in (('forehead', ['forehead']), ('nose', ['nose', 'nose_part']), ('mouth', ['mouth']), ('cheek', [[76, 77, 7, 8, 9]])):
        for ks in sets:
            idx = REALY_KEYPOINTS[ks] if isinstance(ks, str) else ks
            fi[idx] = g.choice(face_in[region], len(idx))
    w = g.dirichlet([2, 2, 2], 85)
    # the keypoints the non-rigid step ties to their nearest scan vertex sit on vertices: on this coarse 'scan' a keypoint
    # inside a triangle would be up to ~10 mm from its nearest vertex, and REALY pulls that vertex onto it
    w[REALY_KEYPOINTS['forehead'] + REALY_KEYPOINTS['nose'] + REALY_KEYPOINTS['mouth']] = [1.0, 0.0, 0.0]
    bary = [[int(a), float(b[0]), float(b[1])] for a, b in zip(fi, w)]
    kp = lambda verts: (torch.from_numpy(w)[..., None] * verts[f[torch.from_numpy(fi)]]).sum(1)
    for s in subjects:
        (root / 'REALY_HIFI3D_keypoints').mkdir(parents=True, exist_ok=True)
        (root / f'REALY_HIFI3D_keypoints/{s}.obj').write_text(''.join(f'v {x} {y} {z}\n' for x, y, z in kp(v).tolist()))   # points only, as REALY's
        (root / f'REALY_scan_region/{s}').mkdir(parents=True, exist_ok=True)
        for region, m in near.items():
            new = torch.full((v.shape[0],), -1, dtype=torch.long); new[m] = torch.arange(int(m.sum()))
            write_obj(root / f'REALY_scan_region/{s}/{region}.obj', v[m], new[f[m[f].all(1)]])
    return v, f, bary, near

def test_realy_protocol_end_to_end(tmp_path, capsys):
    import json
    from facebench.metrics.protocols import realy_evaluate
    v, f, bary, near = realy_fixture(tmp_path / 'realy')
    (tmp_path / 'pred').mkdir()
    R = axis_angle_to_matrix(torch.tensor([0.1, -0.2, 0.05], dtype=torch.float64))
    write_obj(tmp_path / 'pred/1_front.obj', (0.001 * v) @ R.T + 0.02, f)              # the GT in metres, rotated: error 0
    nose_c = torch.tensor([0., 0., 80.], dtype=torch.float64)
    bumped = v + 3.0 * torch.exp(-((v - nose_c) ** 2).sum(-1) / 12.0 ** 2)[:, None] * torch.nn.functional.normalize(v, dim=-1)
    write_obj(tmp_path / 'pred/2_front.obj', bumped, f)                              # subject 2: a 3 mm bump on the nose
    write_obj(tmp_path / 'pred/notasubject.obj', v, f)
    (tmp_path / 'TOPO.txt').write_text(json.dumps(bary))
    np.savetxt(tmp_path / 'scale.txt', [1.0, 2.0, 1.5])
    args = parse(['eval', '--pred', str(tmp_path / 'pred'), '--gt', str(tmp_path / 'realy'), '--out', str(tmp_path / 'out'),
                  '--protocol', 'realy', '--realy-keypoints', str(tmp_path / 'TOPO.txt'), '--realy-scale', str(tmp_path / 'scale.txt'),
                  '--plots', '--quiet'])
    assert main_eval(args) == 0
    assert '2 (1 without prediction)' in capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / 'out/results.csv')))
    assert [r['subject'] for r in rows] == ['1_front', '2_front', 'mean', 'median', 'std']
    for g in ('nose', 'mouth', 'forehead', 'cheek'): assert float(rows[0][g]) < 1e-4
    # subject 2 against the protocol function run directly (GT keypoints / regions from the same files), × its scale 2.0
    from facebench.io import load_mesh
    regions = {g: (lambda m: (m.vertices, m.faces))(load_mesh(tmp_path / f'realy/REALY_scan_region/2/{g}.obj', dtype=torch.float64))
               for g in ('nose', 'mouth', 'forehead', 'cheek')}
    fi = torch.tensor([b[0] for b in bary]); w = torch.tensor([[b[1], b[2], 1 - b[1] - b[2]] for b in bary], dtype=torch.float64)
    pm = load_mesh(tmp_path / 'pred/2_front.obj', dtype=torch.float64)
    direct = realy_evaluate(pm.vertices, pm.faces, (w[..., None] * pm.vertices[pm.faces[fi]]).sum(1), regions,
                            load_mesh(tmp_path / 'realy/REALY_HIFI3D_keypoints/2.obj', dtype=torch.float64).vertices)
    assert abs(float(rows[1]['nose']) - 2.0 * direct.errors['nose']) < 1e-9 and float(rows[1]['nose']) > 0.5
    vals = np.array([float(rows[0]['nose']), float(rows[1]['nose'])])
    assert abs(float(rows[2]['nose']) - vals.mean()) < 1e-12 and abs(float(rows[4]['nose']) - vals.std(ddof=1)) < 1e-12
    assert abs(float(rows[2]['all']) - np.mean([float(rows[2][g]) for g in ('nose', 'mouth', 'forehead', 'cheek')])) < 1e-12
    md = (tmp_path / 'out/results.md').read_text()
    assert '| subject | nose | mouth | forehead | cheek | all |' in md and 'in mm' in md and 'published protocol' in md
    assert (tmp_path / 'out/cumulative_error.png').stat().st_size > 1000 and (tmp_path / 'out/heatmaps/2_front.html').stat().st_size > 10000
    # the rigid-only approximation is labelled as such
    res = run_eval(EvalConfig(tmp_path / 'pred', tmp_path / 'realy', tmp_path / 'out2', protocol='realy', keypoints=tmp_path / 'TOPO.txt',
                              nonrigid=False, progress=False))
    assert 'rigid-only' in res.markdown.read_text() and 'scan units' in res.markdown.read_text() and res.summary['mean']['nose'] > 0

def test_realy_eval_errors(tmp_path):
    import json
    v, f, bary, _ = realy_fixture(tmp_path / 'realy', subjects=('7',))
    (tmp_path / 'pred').mkdir(); (tmp_path / 'TOPO.txt').write_text(json.dumps(bary))
    cfg = lambda **k: EvalConfig(tmp_path / 'pred', tmp_path / 'realy', tmp_path / 'out', protocol='realy', keypoints=tmp_path / 'TOPO.txt', progress=False, **k)
    with pytest.raises(DatasetError, match='no REALY prediction'): run_eval(cfg())
    write_obj(tmp_path / 'pred/7_a.obj', v, f)
    np.savetxt(tmp_path / 'scale.txt', [1.0, 2.0])
    with pytest.raises(DatasetError, match="no metrical scale for subject '7'"): run_eval(cfg(scale_file=tmp_path / 'scale.txt'))
    (tmp_path / 'mask.txt').write_text(','.join(['1'] * 10))
    with pytest.raises(DatasetError, match='one per template vertex'): run_eval(cfg(vertex_mask=tmp_path / 'mask.txt'))
    (tmp_path / 'TOPO.txt').write_text(json.dumps(bary[:80]))
    with pytest.raises(DatasetError, match='85 rows'): run_eval(cfg())
    (tmp_path / 'scale.txt').write_text('1.0\nabc\n')                                # not a number: named, as a DatasetError
    with pytest.raises(DatasetError, match=r'scale\.txt: expected one positive metrical scale per line.*abc'):
        run_eval(cfg(scale_file=tmp_path / 'scale.txt'))
    (tmp_path / 'TOPO.txt').write_text(json.dumps([[10 ** 6, 0.3, 0.3]] * 85))
    with pytest.raises(DatasetError, match='face indices'): run_eval(cfg())

def test_realy_options_only_under_realy(tmp_path):
    (tmp_path / 'f.txt').write_text('1\n')
    for proto in ('mesh', 'multiface', 'now'):
        for opt, flag in (('keypoints', 'realy-keypoints'), ('scale_file', 'realy-scale'), ('vertex_mask', 'realy-mask')):
            with pytest.raises(InputError, match=rf'`{opt}` \(--{flag}\) is only used by --protocol realy, got protocol .{proto}'):
                EvalConfig(tmp_path, tmp_path, tmp_path / 'o', protocol=proto, **{opt: tmp_path / 'f.txt'})
        with pytest.raises(InputError, match=r'--realy-rigid-only\) is only used by --protocol realy'):
            EvalConfig(tmp_path, tmp_path, tmp_path / 'o', protocol=proto, nonrigid=False)
        EvalConfig(tmp_path, tmp_path, tmp_path / 'o', protocol=proto, nonrigid=True)                   # the default is accepted
    args = parse(['eval', '--pred', str(tmp_path), '--gt', str(tmp_path), '--out', str(tmp_path / 'o'), '--realy-rigid-only'])
    with pytest.raises(InputError, match='only used by --protocol realy'): main_eval(args)
    # under realy all four are taken
    c = EvalConfig(tmp_path, tmp_path, tmp_path / 'o', protocol='realy', keypoints=tmp_path / 'f.txt', scale_file=tmp_path / 'f.txt',
                   vertex_mask=tmp_path / 'f.txt', nonrigid=False)
    assert c.keypoints == tmp_path / 'f.txt' and not c.nonrigid

def test_protocol_specific_options_are_not_silently_ignored(tmp_path):
    (tmp_path / 'kp.txt').write_text('1\n')
    mk = lambda proto, **kw: EvalConfig(tmp_path, tmp_path, tmp_path / 'o', protocol=proto,
                                        **({'keypoints': tmp_path / 'kp.txt'} if proto == 'realy' else {}), **kw)
    for proto in ('mesh', 'now', 'realy'):
        with pytest.raises(InputError, match=r'`space` \(--multiface-space\) is only used by --protocol multiface'): mk(proto, space='world')
        with pytest.raises(InputError, match=r'`temporal` \(--no-temporal\) is only used by --protocol multiface'): mk(proto, temporal=False)
    for proto in ('mesh', 'multiface', 'realy'):
        with pytest.raises(InputError, match=r'`metrical` \(--metrical\) is only used by --protocol now'): mk(proto, metrical=True)
    for proto in ('now', 'realy'):
        with pytest.raises(InputError, match=r'`regions` \(--regions\) is only used by --protocol mesh or multiface'): mk(proto, regions=tmp_path / 'r.npz')
    mk('multiface', space='world', temporal=False, regions=tmp_path / 'r.npz'); mk('now', metrical=True); mk('mesh', regions=tmp_path / 'r.npz')

def test_on_missing_fail_lists_at_most_20(tmp_path):
    v, f = sphere_mesh(4, 8, dtype=torch.float64)
    (tmp_path / 'gt').mkdir(); (tmp_path / 'pred').mkdir()
    for i in range(24): write_obj(tmp_path / f'gt/m{i:02d}.obj', v, f)
    write_obj(tmp_path / 'pred/m00.obj', v, f)
    with pytest.raises(DatasetError) as e:
        run_eval(EvalConfig(tmp_path / 'pred', tmp_path / 'gt', tmp_path / 'o', on_missing='fail', progress=False))
    lines = str(e.value).split('\n')
    assert lines[0] == f"23 of 24 GT meshes have no prediction under {tmp_path / 'pred'} (--on-missing fail):"
    assert lines[1:21] == [f'  m{i:02d}' for i in range(1, 21)] and lines[21:] == ['  ... and 3 more']

def test_mf_summary_groups_interleaved_rows():
    "Per clip / subject / overall groups of rows in any order, against a direct numpy computation per group."
    from facebench.metrics.evaluate import _mf_summary
    g = np.random.default_rng(0)
    keys = ['cd_mm', 'cr_2mm']
    rows = [{'subject': s, 'sequence': q, 'frame': f'{i:03d}', 'cd_mm': float(g.random()), 'cr_2mm': float(g.random())}
            for i, (s, q) in enumerate([('A', 'x'), ('B', 'x'), ('A', 'y'), ('A', 'x'), ('B', 'x'), ('A', 'y'), ('A', 'x')])]
    rows[3]['cd_mm'] = float('nan')                                      # nan values are left out of mean / median
    clips = {('A', 'x'): {'jitter_pred_mm': 1.0, 'temporal_frames': 3}, ('B', 'x'): {'jitter_pred_mm': 2.0, 'temporal_frames': 0},
             ('A', 'y'): {'jitter_pred_mm': 4.0, 'temporal_frames': 2}}
    summary, table = _mf_summary(rows, clips, keys)
    def ref(sel):
        a = np.array([r['cd_mm'] for r in rows if sel(r)]); a = a[~np.isnan(a)]
        return a.mean(), np.median(a), sum(map(sel, rows))
    for name, sel in (('A/x', lambda r: (r['subject'], r['sequence']) == ('A', 'x')), ('B/x', lambda r: r['subject'] == 'B'),
                      ('A/y', lambda r: (r['subject'], r['sequence']) == ('A', 'y'))):
        m, med, n = ref(sel)
        e = summary['sequences'][name]
        assert e['n_frames'] == n and np.isclose(e['mean']['cd_mm'], m) and np.isclose(e['median']['cd_mm'], med)
    m, med, n = ref(lambda r: r['subject'] == 'A')
    e = summary['subjects']['A']
    assert e['n_frames'] == n == 5 and np.isclose(e['mean']['cd_mm'], m) and np.isclose(e['median']['cd_mm'], med)
    assert e['mean']['jitter_pred_mm'] == 2.5 and e['temporal_frames'] == 5 and summary['subjects']['B']['temporal_frames'] == 0
    assert summary['overall']['n_frames'] == 7 and np.isclose(summary['overall']['mean']['jitter_pred_mm'], 7 / 3)
    assert [(t['level'], t['subject'], t['sequence']) for t in table[::2]] == [
        ('sequence', 'A', 'x'), ('sequence', 'B', 'x'), ('sequence', 'A', 'y'), ('subject', 'A', ''), ('subject', 'B', ''), ('overall', 'all', '')]

# ---------------------------------------------------------------- Multiface
MF_A, MF_B = 'm--20180227--0000--6795937--GHS', 'm--20190529--1300--002421669--GHS'   # the real entity folder names
R_MM = 20.0                                                                           # sphere radius (mm)

def mf_sphere():
    return sphere_mesh(32, 64, dtype=torch.float64)

def mf_gt(t: int) -> torch.Tensor:
    "GT frame t (mm): the sphere, translated along z by 0.1·t³ mm (third difference 0.6 mm per frame)."
    v, _ = mf_sphere()
    return R_MM * v + torch.tensor([0.0, 0.0, 0.1 * t ** 3], dtype=torch.float64)

def mf_pose(t: int):
    "A head pose [R | t] (3,4) for <frame>_transform.txt."
    R = axis_angle_to_matrix(torch.tensor([0.05 * t, 0.3, -0.1], dtype=torch.float64))
    return torch.cat([R, torch.tensor([[10.0 + t], [-5.0], [800.0]], dtype=torch.float64)], 1)

def mf_fixture(root):
    """A Multiface root in the real layout: <entity>/tracked_mesh/<sequence>/<frame>.obj|.bin + <frame>_transform.txt.
    A: E001 frames 000100-000103 (.obj, .obj, .bin only, .bin only), E002 frames 000300-000301 (.bin only; faces from A's .obj).
    B: E057 frames 000200-000203 (.obj + .bin for the first, .bin only for the rest)."""
    _, f = mf_sphere()
    clips = {(MF_A, 'E001_Neutral_Eyes_Open'): [('000100', 'obj'), ('000101', 'obj'), ('000102', 'bin'), ('000103', 'bin')],
             (MF_A, 'E002_Swallow'): [('000300', 'bin'), ('000301', 'bin')],
             (MF_B, 'E057_Cheeks_Puffed'): [('000200', 'both'), ('000201', 'bin'), ('000202', 'bin'), ('000203', 'bin')]}
    for (ent, seq), frames in clips.items():
        d = root / ent / 'tracked_mesh' / seq
        d.mkdir(parents=True)
        for t, (fr, kind) in enumerate(frames):
            v = mf_gt(t)
            if kind in ('obj', 'both'): write_obj(d / f'{fr}.obj', v, f)
            if kind in ('bin', 'both'): v.numpy().astype('<f4').tofile(d / f'{fr}.bin')
            np.savetxt(d / f'{fr}_transform.txt', mf_pose(t).numpy())
    return clips

def mf_predictions(root, clips, skip=('000301',)):
    """A: the GT moved rigidly (another pose per frame), in metres, under <pred>/<id>/<sequence>/<frame>.obj.
    B: the GT offset by 1 mm along its (exact, radial) normals, in metres, under the GT folder name <pred>/<folder>/tracked_mesh/...; one frame as .bin."""
    _, f = mf_sphere()
    for (ent, seq), frames in clips.items():
        for t, (fr, _) in enumerate(frames):
            if fr in skip: continue
            v = mf_gt(t)
            if ent == MF_A:
                R = axis_angle_to_matrix(torch.tensor([0.2, -0.1 * t, 0.4], dtype=torch.float64))
                d = root / '6795937' / seq; d.mkdir(parents=True, exist_ok=True)
                write_obj(d / f'{fr}.obj', (v @ R.T + torch.tensor([3.0, 1.0, -2.0 * t], dtype=torch.float64)) / 1000, f)
            else:
                c = torch.tensor([0.0, 0.0, 0.1 * t ** 3], dtype=torch.float64)
                p = (v + 1.0 * (v - c) / R_MM) / 1000                                      # metres, as the predictions of A
                d = root / ent / 'tracked_mesh' / seq; d.mkdir(parents=True, exist_ok=True)
                if fr == '000202': p.numpy().astype('<f4').tofile(d / f'{fr}.bin')
                else: write_obj(d / f'{fr}.obj', p, f)

def mf_offset_bound() -> float:
    "Rigorous lower bound of CD for the 1 mm normal offset: pred→GT is exactly 1 mm (the GT polyhedron lies inside the ball of radius r),"
    "GT→pred ≥ (r+1)·cos β − r with β the largest angular circumradius of a facet (the offset facets lie outside radius (r+1)·cos β)."
    v, f = mf_sphere()
    t = v[f]
    a, b, c = [(t[:, i] - t[:, j]).norm(dim=-1) for i, j in ((1, 2), (0, 2), (0, 1))]
    area = 0.5 * torch.linalg.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]).norm(dim=-1)
    beta = torch.arcsin((a * b * c / (4 * area)).max())          # unit sphere: circumradius = sin β
    return 0.5 * (1 + (R_MM + 1) * float(torch.cos(beta)) - R_MM)

def test_multiface_protocol_end_to_end(tmp_path, capsys):
    clips = mf_fixture(tmp_path / 'mf')
    mf_predictions(tmp_path / 'pred', clips)
    args = parse(['eval', '--pred', str(tmp_path / 'pred'), '--gt', str(tmp_path / 'mf'), '--out', str(tmp_path / 'out'), '--protocol', 'multiface',
                  '--subjects', '6795937,002421669', '--plots', '--quiet'])
    assert main_eval(args) == 0
    out = capsys.readouterr().out
    assert '9 (1 without prediction)' in out and '6795937/E002_Swallow/000301' in out
    assert (tmp_path / 'out/missing.txt').read_text().split() == ['6795937/E002_Swallow/000301']
    rows = list(csv.DictReader(open(tmp_path / 'out/results.csv')))
    frames = [r for r in rows if r['level'] == 'frame']
    assert [(r['subject'], r['frame']) for r in frames] == [('6795937', f'00010{i}') for i in range(4)] + [('6795937', '000300')] + \
                                                            [('002421669', f'00020{i}') for i in range(4)]
    # A: a rigid motion of the GT (and m vs mm) -> CD ≈ 0, MNE ≈ 0, CR = 1 after the rigid alignment
    for r in frames[:5]: assert float(r['cd_mm']) < 1e-3 and float(r['mne_rad']) < 1e-4 and float(r['cr_2mm']) == 1.0
    # B: a 1 mm offset along the normals -> CD in [bound, 1] mm (the facets' sag is the only slack), CR@2mm = 1, normals unchanged
    lo = mf_offset_bound()
    assert lo > 0.97
    for r in frames[5:]: assert lo - 1e-4 < float(r['cd_mm']) <= 1 + 1e-4 and float(r['cr_2mm']) == 1.0 and float(r['mne_rad']) < 1e-4
    # summaries: per clip, per subject, overall, each mean and median of the frame rows
    grp = {(r['level'], r['subject'], r['sequence'], r['stat']): r for r in rows if r['level'] != 'frame'}
    b = np.array([float(r['cd_mm']) for r in frames[5:]])
    assert abs(float(grp[('subject', '002421669', '', 'mean')]['cd_mm']) - b.mean()) < 1e-12
    assert abs(float(grp[('sequence', '002421669', 'E057_Cheeks_Puffed', 'median')]['cd_mm']) - np.median(b)) < 1e-12
    allcd = np.array([float(r['cd_mm']) for r in frames])
    assert abs(float(grp[('overall', 'all', '', 'mean')]['cd_mm']) - allcd.mean()) < 1e-12 and grp[('overall', 'all', '', 'mean')]['n_frames'] == '9'
    # temporal: GT moves by 0.1·t³ mm -> jitter (third difference) 0.6 mm; the aligned predictions follow the GT -> acceleration error ≈ 0
    for key in (('sequence', '6795937', 'E001_Neutral_Eyes_Open', 'mean'), ('sequence', '002421669', 'E057_Cheeks_Puffed', 'mean')):
        assert abs(float(grp[key]['jitter_gt_mm']) - 0.6) < 1e-3 and abs(float(grp[key]['jitter_pred_mm']) - 0.6) < 2e-3
        assert float(grp[key]['accel_error_mm']) < 2e-3
    assert grp[('sequence', '6795937', 'E002_Swallow', 'mean')]['jitter_gt_mm'] == 'nan'      # a frame is missing: no temporal value
    md = (tmp_path / 'out/results.md').read_text()
    assert '| level | subject | sequence | stat | n_frames | cd_mm |' in md and '| overall | all |' in md and '000100' not in md
    assert (tmp_path / 'out/cumulative_error.png').stat().st_size > 1000
    for sid in ('6795937', '002421669'): assert (tmp_path / f'out/heatmaps/{sid}.html').stat().st_size > 10000
    # sequence filter and world space: predictions = R v + t of each frame's _transform.txt, no alignment -> CD ≈ 0
    _, f = mf_sphere()
    for t, (fr, _) in enumerate(clips[(MF_A, 'E001_Neutral_Eyes_Open')]):
        P = mf_pose(t)
        (tmp_path / 'world/6795937/E001_Neutral_Eyes_Open').mkdir(parents=True, exist_ok=True)
        write_obj(tmp_path / f'world/6795937/E001_Neutral_Eyes_Open/{fr}.obj', mf_gt(t) @ P[:, :3].T + P[:, 3], f)
    res = run_eval(EvalConfig(tmp_path / 'world', tmp_path / 'mf', tmp_path / 'out_w', protocol='multiface', subjects=['6795937'],
                              sequences=['E001_Neutral_Eyes_Open'], space='world', align='none', pred_units='mm', progress=False))
    assert len(res.rows) == 4 and res.missing == [] and max(r['cd_mm'] for r in res.rows) < 1e-3
    head = run_eval(EvalConfig(tmp_path / 'world', tmp_path / 'mf', tmp_path / 'out_h', protocol='multiface', subjects=['6795937'],
                               sequences=['E001_Neutral_Eyes_Open'], align='none', pred_units='mm', progress=False))
    assert min(r['cd_mm'] for r in head.rows) > 100                                     # head space: the pose is not undone
    assert res.summary['subjects']['6795937']['n_frames'] == 4

def test_multiface_eval_errors(tmp_path):
    clips = mf_fixture(tmp_path / 'mf')
    mf_predictions(tmp_path / 'pred', clips)
    cfg = lambda pred='pred', **k: EvalConfig(tmp_path / pred, tmp_path / 'mf', tmp_path / 'out', protocol='multiface', progress=False, **k)
    # a missing prediction: listed and fatal with on_missing='fail'
    with pytest.raises(DatasetError, match=r'1 of 10 Multiface GT frames have no prediction.*\n  6795937/E002_Swallow/000301'): run_eval(cfg(on_missing='fail'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DatasetError, match=r'none of the 10 Multiface GT frames .* e\.g\. 6795937/E001_Neutral_Eyes_Open/000100\.obj'): run_eval(cfg('empty'))
    # a subject with no frames, a subject that is not there, a sequence it lacks
    (tmp_path / 'mf/m--20180105--0000--002539136--GHS/tracked_mesh/E001_Neutral_Eyes_Open').mkdir(parents=True)
    with pytest.raises(DatasetError, match='002539136--GHS/tracked_mesh/E001_Neutral_Eyes_Open/ holds no mesh'): run_eval(cfg(subjects=['002539136']))
    with pytest.raises(DatasetError, match=r'subject folder 5372021/ missing \(expected m--20180510'): run_eval(cfg(subjects=['5372021']))
    with pytest.raises(DatasetError, match='E057_Cheeks_Puffed/ missing'): run_eval(cfg(subjects=['6795937'], sequences=['E057_Cheeks_Puffed']))
    # .bin frames of a subject without any .obj: the faces must be given
    b = tmp_path / 'mf' / MF_B / 'tracked_mesh/E057_Cheeks_Puffed'
    (b / '000200.obj').rename(tmp_path / 'topo.obj')
    with pytest.raises(DatasetError, match='multiface-topology'): run_eval(cfg(subjects=['002421669']))
    assert len(run_eval(cfg(subjects=['002421669'], topology=tmp_path / 'topo.obj')).rows) == 4
    # a .bin of the wrong byte count (GT and prediction), a GT .obj frame of another topology
    n = mf_sphere()[0].shape[0]
    with open(b / '000201.bin', 'ab') as fh: fh.write(b'\0' * 8)
    with pytest.raises(DatasetError, match=rf'000201.bin: {12 * n + 8} bytes, expected 12 x {n} = {12 * n} bytes'):
        run_eval(cfg(subjects=['002421669'], topology=tmp_path / 'topo.obj'))
    np.zeros((n - 1, 3), dtype='<f4').tofile(tmp_path / 'pred' / MF_B / 'tracked_mesh/E057_Cheeks_Puffed/000202.bin')
    mf_fixture(tmp_path / 'mf2')
    with pytest.raises(DatasetError, match=rf'000202.bin: {12 * (n - 1)} bytes, expected 12 x {n}.*holds {n - 1} vertices: another topology'):
        run_eval(EvalConfig(tmp_path / 'pred', tmp_path / 'mf2', tmp_path / 'out', protocol='multiface', subjects=['002421669'], progress=False))
    v2, f2 = sphere_mesh(8, 16, dtype=torch.float64)
    write_obj(tmp_path / 'mf2' / MF_A / 'tracked_mesh/E001_Neutral_Eyes_Open/000101.obj', R_MM * v2, f2)
    with pytest.raises(DatasetError, match=rf'topology mismatch: GT frame .*000101.obj has {v2.shape[0]} vertices'):
        run_eval(EvalConfig(tmp_path / 'pred', tmp_path / 'mf2', tmp_path / 'out', protocol='multiface', subjects=['6795937'], progress=False))
    # options that only the multiface protocol takes, bad option values
    with pytest.raises(InputError, match='only used by --protocol multiface'): EvalConfig(tmp_path, tmp_path, tmp_path / 'o', subjects=['1'])
    with pytest.raises(InputError, match='on_missing'): cfg(on_missing='ignore')
    with pytest.raises(InputError, match='space'): cfg(space='camera')
    with pytest.raises(InputError, match='is empty'): cfg(subjects=[','])
    with pytest.raises(SystemExit): parse(['eval', '--pred', 'a', '--gt', 'b', '--out', 'c', '--multiface-space', 'x'])

# ---------------------------------------------------------------- Multiface temporal metrics over runs of consecutive frames
def mf_clip(root, seq, frames, pred_skip=(), ent=MF_A):
    """GT frames {number: z offset (mm)} of a small sphere under <root>/mf, predictions (the GT rotated and shifted per frame,
    in metres) under <root>/pred, except the numbers in `pred_skip`. Names are 6-digit numbers unless given as strings."""
    v, f = sphere_mesh(6, 12, dtype=torch.float64)
    d, e = root / 'mf' / ent / 'tracked_mesh' / seq, root / 'pred' / ent.split('--')[3] / seq
    d.mkdir(parents=True); e.mkdir(parents=True)
    for i, (n, z) in enumerate(frames.items()):
        name = n if isinstance(n, str) else f'{n:06d}'
        g = R_MM * v + torch.tensor([0.0, 0.0, z], dtype=torch.float64)
        write_obj(d / f'{name}.obj', g, f)
        R = axis_angle_to_matrix(torch.tensor([0.1, -0.05 * i, 0.3], dtype=torch.float64))
        if n not in pred_skip: write_obj(e / f'{name}.obj', (g @ R.T + torch.tensor([2.0, -1.0, 0.5 * i], dtype=torch.float64)) / 1000, f)
    return v, f

def test_multiface_temporal_runs_with_gaps(tmp_path):
    from facebench.metrics.temporal import jitter
    # clip 1: z = 0.1·t³ mm at frames 0-9, 20-29 and 40-41 (step 1), no prediction for frame 25:
    # runs 0-9 (10), 20-24 (5), 26-29 (4) are measured, 40-41 (2) is too short; third difference of 0.1·t³ = 0.6 mm/frame³
    nums = list(range(10)) + list(range(20, 30)) + [40, 41]
    v, f = mf_clip(tmp_path, 'E001_Neutral_Eyes_Open', {t: 0.1 * t ** 3 for t in nums}, pred_skip=(25,))
    # clip 2: numbered every 2 frames (step 2 is the most common difference): k = 0-9 with z = 0.1·k³ (jitter 0.6) and
    # k = 20-23 with z = 0.2·k³ (jitter 1.2) -> length-weighted mean (10·0.6 + 4·1.2) / 14
    mf_clip(tmp_path, 'E002_Swallow', {2 * k: (0.1 if k < 10 else 0.2) * k ** 3 for k in list(range(10)) + list(range(20, 24))})
    res = run_eval(EvalConfig(tmp_path / 'pred', tmp_path / 'mf', tmp_path / 'out', protocol='multiface', progress=False))
    s1, s2 = res.summary['sequences']['6795937/E001_Neutral_Eyes_Open'], res.summary['sequences']['6795937/E002_Swallow']
    assert abs(s1['mean']['jitter_gt_mm'] - 0.6) < 1e-9 and abs(s1['mean']['jitter_pred_mm'] - 0.6) < 1e-6 and s1['mean']['accel_error_mm'] < 1e-6
    assert (s1['temporal_frames'], s1['short_run_frames'], s1['gap_frames']) == (19, 2, 10 + 1 + 10)
    # the jump across the gap, if differenced, would dominate: the clip's frames taken as one sequence give a jitter far from 0.6
    naive = float(jitter(torch.stack([R_MM * v + torch.tensor([0.0, 0.0, 0.1 * t ** 3], dtype=torch.float64) for t in nums if t != 25])))
    assert naive > 10
    w = (10 * 0.6 + 4 * 1.2) / 14
    assert abs(s2['mean']['jitter_gt_mm'] - w) < 1e-9 and abs(s2['mean']['jitter_pred_mm'] - w) < 1e-6 and s2['mean']['accel_error_mm'] < 1e-6
    assert (s2['temporal_frames'], s2['short_run_frames'], s2['gap_frames']) == (14, 0, 10)
    rows = list(csv.DictReader(open(res.csv)))
    sub = next(r for r in rows if r['level'] == 'subject' and r['stat'] == 'mean')
    assert (sub['temporal_frames'], sub['short_run_frames'], sub['gap_frames']) == ('33', '2', '31')
    assert abs(float(sub['jitter_gt_mm']) - (0.6 + w) / 2) < 1e-9                    # mean over the clips
    md = res.markdown.read_text()
    assert 'temporal_frames | short_run_frames | gap_frames' in md and 'gap_frames = frame numbers absent' in md
    # an explicit step of 1 on clip 2: every frame is its own run -> no temporal value, all frames reported as short runs
    r1 = run_eval(EvalConfig(tmp_path / 'pred', tmp_path / 'mf', tmp_path / 'out1', protocol='multiface', sequences=['E002_Swallow'],
                             frame_step=1, progress=False)).summary['sequences']['6795937/E002_Swallow']
    n2 = [2 * k for k in list(range(10)) + list(range(20, 24))]
    absent = len(set(range(n2[0], n2[-1] + 1)) - set(n2))                               # every number between 0 and 46 not present
    assert np.isnan(r1['mean']['jitter_gt_mm']) and (r1['temporal_frames'], r1['short_run_frames'], r1['gap_frames']) == (0, 14, absent)

def test_multiface_temporal_errors(tmp_path):
    mf_clip(tmp_path, 'E001_Neutral_Eyes_Open', {'000001': 0.0, 'neutral': 0.1, '000003': 0.2, '000004': 0.3})
    cfg = lambda **k: EvalConfig(tmp_path / 'pred', tmp_path / 'mf', tmp_path / 'out', protocol='multiface', progress=False, **k)
    with pytest.raises(DatasetError, match=r"E001_Neutral_Eyes_Open/neutral\.obj: frame name 'neutral' is not a frame number.*--no-temporal"):
        run_eval(cfg())
    res = run_eval(cfg(temporal=False))                                                # without temporal metrics the names may be anything
    assert len(res.rows) == 4 and 'jitter_gt_mm' not in res.summary['overall']['mean'] and 'temporal_frames' not in res.summary['overall']
    assert 'No temporal metrics' in res.markdown.read_text()
    args = parse(['eval', '--pred', str(tmp_path / 'pred'), '--gt', str(tmp_path / 'mf'), '--out', str(tmp_path / 'o2'), '--protocol', 'multiface',
                  '--no-temporal', '--quiet'])
    assert main_eval(args) == 0
    # two files of the same frame number
    mf_clip(tmp_path, 'E002_Swallow', {'0001': 0.0, '001': 0.1, '0002': 0.2})
    with pytest.raises(DatasetError, match=r'0001\.obj.*001\.obj have the same frame number'): run_eval(cfg(sequences=['E002_Swallow']))
    # frame_step: a positive integer, only for multiface
    for bad in (0, -2, 1.5, True, '2'):
        with pytest.raises(InputError, match='frame_step'): cfg(frame_step=bad)
    with pytest.raises(InputError, match='only used by --protocol multiface'): EvalConfig(tmp_path, tmp_path, tmp_path / 'o', frame_step=2)
    assert parse(['eval', '--pred', 'a', '--gt', 'b', '--out', 'c', '--frame-step', '3']).frame_step == 3

def test_frame_runs_and_step():
    from facebench.metrics.evaluate import frame_runs, common_step, frame_number
    assert frame_number(Path('a/021897.obj')) == 21897 and common_step([5]) == 1
    assert common_step([0, 2, 4, 6, 7, 8]) == 2 and common_step([0, 1, 3, 5, 6]) == 1        # a tie -> the smaller step
    assert frame_runs([0, 2, 4, 9, 11], 2) == ([[0, 1, 2], [3, 4]], 2) and frame_runs([], 1) == ([], 0)
    for n in (['1x'], ['+1'], ['1_0'], [' 1']):
        with pytest.raises(DatasetError, match='not a frame number'): frame_number(Path(n[0] + '.obj'))
    with pytest.raises(InputError, match='strictly increasing'): frame_runs([0, 2, 2], 1)
