"""Dataset index loaders on tiny synthetic folders written in each dataset's layout."""
from pathlib import Path
import numpy as np
import pytest
from facebench.metrics.datasets import (DatasetError, load_now, now_prediction, read_pp, read_landmarks_3d, load_realy, load_facescape_tu,
                                        load_multiface, read_pts, load_landmark_folder, read_realy_barycentric, MULTIFACE_ENTITIES,
                                        read_multiface_bin, read_multiface_transform, multiface_subject_id)

def pp_text(n=7):
    return '<!DOCTYPE PickedPoints>\n<PickedPoints>\n' + ''.join(f' <point x="{i}.5" y="{-i}" z="2" active="1" name="{i}"/>\n' for i in range(n)) + '</PickedPoints>\n'

def test_now_layout_and_predictions(tmp_path):
    (tmp_path / 'imagepathsvalidation.txt').write_text('S1/multiview_expressions/IMG_1.jpg\nS2/selfie/IMG_9.jpg\nbadline\n')
    for s in ('S1', 'S2'):
        (tmp_path / 'scans' / s).mkdir(parents=True); (tmp_path / 'scans' / s / f'{s}.obj').write_text('v 0 0 0\n')
    (tmp_path / 'scans_lmks_onlypp' / 'S1').mkdir(parents=True); (tmp_path / 'scans_lmks_onlypp/S1/S1.pp').write_text(pp_text())
    with pytest.raises(DatasetError) as e: load_now(tmp_path)
    assert 'scans_lmks_onlypp/S2/*.pp missing' in str(e.value) and 'badline' in str(e.value) and '2 problem' in str(e.value)
    (tmp_path / 'imagepathsvalidation.txt').write_text('S1/multiview_expressions/IMG_1.jpg\n')
    items = load_now(tmp_path)
    np.testing.assert_array_equal(read_pp(items[0].scan_landmarks)[:, 0], np.arange(7) + 0.5)
    pred = tmp_path / 'pred'
    with pytest.raises(DatasetError, match='mesh'): now_prediction(pred, items[0])
    (pred / 'S1/multiview_expressions').mkdir(parents=True)
    (pred / 'S1/multiview_expressions/IMG_1.ply').write_text('ply\n')
    np.save(pred / 'S1/multiview_expressions/IMG_1.npy', np.zeros((1, 7, 3)))
    m, l = now_prediction(pred, items[0])
    assert m.suffix == '.ply' and read_landmarks_3d(l).shape == (7, 3)
    np.savetxt(tmp_path / 'bad.txt', np.zeros((6, 3)))
    with pytest.raises(DatasetError, match='7 landmarks'): read_landmarks_3d(tmp_path / 'bad.txt')
    (tmp_path / 'x.pp').write_text('<point x="1" y="2"/>')
    with pytest.raises(DatasetError, match='malformed'): read_pp(tmp_path / 'x.pp')
    with pytest.raises(DatasetError, match='image list'): load_now(tmp_path, split='test')

def test_realy_facescape_multiface(tmp_path):
    r = tmp_path / 'realy'
    (r / 'REALY_HIFI3D_keypoints').mkdir(parents=True); (r / 'REALY_HIFI3D_keypoints/001.obj').write_text('v 0 0 0\n')
    (r / 'REALY_scan_region/001').mkdir(parents=True)
    for g in ('nose', 'mouth', 'forehead'): (r / f'REALY_scan_region/001/{g}.obj').write_text('v 0 0 0\n')
    with pytest.raises(DatasetError, match='cheek.obj missing'): load_realy(r)
    (r / 'REALY_scan_region/001/cheek.obj').write_text('v 0 0 0\n')
    assert load_realy(r)[0].subject == '001'
    fs = tmp_path / 'fs'
    (fs / '1/models_reg').mkdir(parents=True); (fs / '1/models_reg/1_neutral.obj').write_text(''); (fs / '1/models_reg/2_smile.obj').write_text('')
    assert set(load_facescape_tu(fs)) == {('1', 'neutral'), ('1', 'smile')}
    with pytest.raises(DatasetError, match='mouth_stretch'): load_facescape_tu(fs, expressions=['neutral', 'mouth_stretch'])
    mf = tmp_path / 'mf'
    (mf / 'm--1--A--GHS/tracked_mesh/E001').mkdir(parents=True); (mf / 'm--1--A--GHS/tracked_mesh/E001/000102.obj').write_text('')
    assert load_multiface(mf)['m--1--A--GHS']['E001'][0].name == '000102.obj'
    with pytest.raises(DatasetError, match='subject folder B/ missing'): load_multiface(mf, subjects=['m--1--A--GHS', 'B'])
    with pytest.raises(DatasetError, match='not a directory'): load_multiface(tmp_path / 'nope')

def test_landmark_folder_300w(tmp_path):
    pts = 'version: 1\nn_points: 68\n{\n' + ''.join(f'{i} {2 * i}\n' for i in range(68)) + '}\n'
    (tmp_path / 'a.png').write_bytes(b'x'); (tmp_path / 'a.pts').write_text(pts)
    (tmp_path / 'sub').mkdir(); (tmp_path / 'sub/b.jpg').write_bytes(b'x')
    with pytest.raises(DatasetError, match='b.pts missing'): load_landmark_folder(tmp_path)
    (tmp_path / 'sub/b.pts').write_text(pts.replace('n_points: 68', 'n_points: 67'))
    with pytest.raises(DatasetError, match='n_points is 67'): load_landmark_folder(tmp_path)
    (tmp_path / 'sub/b.pts').write_text(pts)
    out = load_landmark_folder(tmp_path)
    assert len(out) == 2 and out[0][1].shape == (68, 2) and out[0][1][5, 1] == 10

def test_multiface_real_layout(tmp_path):
    # facebookresearch/multiface DATA_STRUCTURE.md: <entity folder>/tracked_mesh/<sequence>/<frame>.{obj,bin} + <frame>_transform.txt
    assert len(MULTIFACE_ENTITIES) == 13 and MULTIFACE_ENTITIES['6795937'] == 'm--20180227--0000--6795937--GHS'
    ent = tmp_path / MULTIFACE_ENTITIES['6795937'] / 'tracked_mesh'
    (ent / 'E001_Neutral_Eyes_Open').mkdir(parents=True); (ent / 'E057_Cheeks_Puffed').mkdir()
    v = np.arange(12, dtype='<f4').reshape(4, 3)
    for fr in ('000102', '000105'):
        v.tofile(ent / f'E001_Neutral_Eyes_Open/{fr}.bin')
        np.savetxt(ent / f'E001_Neutral_Eyes_Open/{fr}_transform.txt', np.hstack([np.eye(3), [[1.], [2.], [3.]]]))
    (ent / 'E001_Neutral_Eyes_Open/000102.obj').write_text('v 0 0 0\n')
    v.tofile(ent / 'E057_Cheeks_Puffed/000900.bin')
    out = load_multiface(tmp_path, subjects=['6795937'])                        # entity id or folder name
    seq = out['m--20180227--0000--6795937--GHS']
    assert [p.name for p in seq['E001_Neutral_Eyes_Open']] == ['000102.obj', '000105.bin']   # one file per frame, .obj first
    assert list(load_multiface(tmp_path, sequences=['E057_Cheeks_Puffed'])[MULTIFACE_ENTITIES['6795937']]) == ['E057_Cheeks_Puffed']
    np.testing.assert_array_equal(read_multiface_bin(seq['E001_Neutral_Eyes_Open'][1], n_vertices=4), v)
    R_t = read_multiface_transform(ent / 'E001_Neutral_Eyes_Open/000105_transform.txt')
    assert R_t.shape == (3, 4) and R_t[2, 3] == 3
    with pytest.raises(DatasetError, match=r'subject folder 002421669/ missing \(expected m--20190529--1300--002421669--GHS/\)'):
        load_multiface(tmp_path, subjects=['6795937', '002421669'])
    with pytest.raises(DatasetError, match='E099_X/ missing'): load_multiface(tmp_path, sequences=['E099_X'])
    with pytest.raises(DatasetError, match=r'48 bytes, expected 12 x 5 = 60 bytes.*holds 4 vertices'):
        read_multiface_bin(seq['E001_Neutral_Eyes_Open'][1], n_vertices=5)
    np.arange(4, dtype='<f4').tofile(tmp_path / 'bad.bin')                       # 16 bytes: not whole vertices
    with pytest.raises(DatasetError, match='16 bytes, expected a positive multiple of 12'): read_multiface_bin(tmp_path / 'bad.bin')
    (tmp_path / 'odd.bin').write_bytes(b'\0' * 13)                                # not even whole float32 values
    with pytest.raises(DatasetError, match=r'13 bytes, expected 12 x 1 = 12'): read_multiface_bin(tmp_path / 'odd.bin', n_vertices=1)
    assert multiface_subject_id(MULTIFACE_ENTITIES['002421669']) == '002421669' and multiface_subject_id('S1') == 'S1'
    np.array([0, np.nan, 1], dtype='<f4').tofile(tmp_path / 'nan.bin')
    with pytest.raises(DatasetError, match='NaN'): read_multiface_bin(tmp_path / 'nan.bin')
    (tmp_path / 't.txt').write_text('1 2 3\n')
    with pytest.raises(DatasetError, match='3x4 or 4x4'): read_multiface_transform(tmp_path / 't.txt')

def test_realy_barycentric_file(tmp_path):
    import json
    rows = [[i, 0.2, 0.3] for i in range(85)]
    (tmp_path / 'HIFI3D.txt').write_text(json.dumps(rows))
    fi, w = read_realy_barycentric(tmp_path / 'HIFI3D.txt', n_faces=100)
    assert fi.dtype == np.int64 and fi[84] == 84 and np.allclose(w[0], [0.2, 0.3, 0.5]) and np.allclose(w.sum(1), 1)
    with pytest.raises(DatasetError, match=r'\[0, 50\)'): read_realy_barycentric(tmp_path / 'HIFI3D.txt', n_faces=50)
    (tmp_path / 'x.txt').write_text('not json')
    with pytest.raises(DatasetError, match='JSON'): read_realy_barycentric(tmp_path / 'x.txt')
    with pytest.raises(DatasetError, match='does not exist'): read_realy_barycentric(tmp_path / 'none.txt')
    # numeric subject ids are listed in numeric order, as REALY's ids (1..100)
    r = tmp_path / 'realy'
    for sid in ('10', '2'):
        (r / 'REALY_HIFI3D_keypoints').mkdir(parents=True, exist_ok=True); (r / f'REALY_HIFI3D_keypoints/{sid}.obj').write_text('v 0 0 0\n')
        (r / f'REALY_scan_region/{sid}').mkdir(parents=True)
        for g in ('nose', 'mouth', 'forehead', 'cheek'): (r / f'REALY_scan_region/{sid}/{g}.obj').write_text('v 0 0 0\n')
    assert [it.subject for it in load_realy(r)] == ['2', '10']

def test_report_problems_and_check_dir(tmp_path):
    import facebench.metrics.datasets as ds
    import facebench.metrics.protocols as pr
    import facebench.metrics as fm
    assert ds._report is ds.report_problems and ds._dir is ds.check_dir               # private names kept for the loaders
    assert pr.REALY_REGIONS is ds.REALY_REGIONS is fm.REALY_REGIONS                   # one definition
    assert ds.check_dir(tmp_path, 'demo') == tmp_path
    with pytest.raises(DatasetError, match=r'^demo: .*nofolder is not a directory$'): ds.check_dir(tmp_path / 'nofolder', 'demo')
    assert ds.report_problems(tmp_path, 'demo', []) is None                           # nothing to report: no error
    probs = [f'p{i}' for i in range(12)]
    for limit, listed in ((8, 8), (20, 12), (3, 3)):
        with pytest.raises(DatasetError) as e: ds.report_problems(tmp_path, 'demo', probs, limit=limit)
        lines = str(e.value).split('\n')
        assert lines[0] == f'demo at {tmp_path}: 12 problem(s):' and lines[1:1 + listed] == [f'  p{i}' for i in range(listed)]
        assert lines[1 + listed:] == ([f'  ... and {12 - listed} more'] if listed < 12 else [])
    with pytest.raises(DatasetError, match=r'^3 missing:\n  p0\n  p1\n  p2$'): ds.report_problems(tmp_path, 'demo', probs[:3], header='3 missing')
    # a loader reports every problem at once, cut at 8
    (tmp_path / 'REALY_HIFI3D_keypoints').mkdir(); (tmp_path / 'REALY_scan_region').mkdir()
    for s in range(3): (tmp_path / f'REALY_HIFI3D_keypoints/{s}.obj').write_text('v 0 0 0\n')
    with pytest.raises(DatasetError, match=r'REALY at .*: 12 problem\(s\):(\n  .*){8}\n  \.\.\. and 4 more$'): load_realy(tmp_path)
