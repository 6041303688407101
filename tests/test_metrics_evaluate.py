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
    with pytest.raises(InputError, match='realy'): run_eval(EvalConfig(tmp_path, tmp_path, tmp_path / 'o', protocol='realy', progress=False))
    with pytest.raises(SystemExit): parse(['eval', '--pred', 'a', '--gt', 'b', '--out', 'c', '--protocol', 'x'])
