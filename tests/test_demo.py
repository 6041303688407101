"""The README's first command: `facebench demo --out DIR` writes OBJ meshes, PNG images and a standalone HTML page."""
import json, shutil, subprocess, sys
from pathlib import Path
import numpy as np, pytest

def test_console_script_writes_meshes_images_and_html(tmp_path):
    exe = shutil.which('facebench')
    cmd = [exe] if exe else [sys.executable, '-c', 'import sys; from facebench.cli import main; sys.exit(main())']
    out = tmp_path / 'demo'
    r = subprocess.run(cmd + ['demo', '--out', str(out), '--n-identities', '2', '--n-vertices', '2000', '--image-size', '128', '--quiet'],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    objs = sorted((out / 'meshes').glob('*.obj'))
    assert len(objs) == 2 * 5
    trimesh = pytest.importorskip('trimesh')
    m = trimesh.load(objs[0], process=False, force='mesh')
    assert len(m.vertices) > 1000 and len(m.faces) > 1000
    import matplotlib.image as mpimg
    pngs = sorted((out / 'images').glob('*.png'))
    assert len(pngs) >= 2
    img = mpimg.imread(pngs[0])
    assert img.ndim == 3 and img.shape[0] >= 128 and img[..., :3].std() > 0.05   # not a blank image
    html = (out / 'index.html').read_text()
    assert 'Plotly.newPlot' in html or 'plotly' in html.lower()
    assert '<script src="http' not in html          # standalone: plotly.js is embedded, no network needed
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['meshes'] == 10

def test_bad_arguments_are_reported():
    from facebench.core import InputError
    from facebench.demo import DemoConfig, run_demo
    with pytest.raises(InputError, match='n_identities'):
        run_demo(DemoConfig(out=Path('unused'), n_identities=0))
    with pytest.raises(InputError, match="unknown demo expression"):
        run_demo(DemoConfig(out=Path('/tmp/unused-demo'), n_identities=1, expressions=('grin',), n_vertices=600, image_size=32), progress=False)
