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
    (tmp_path / 'TOPO.txt').write_text(json.dumps([[10 ** 6, 0.3, 0.3]] * 85))
    with pytest.raises(DatasetError, match='face indices'): run_eval(cfg())
