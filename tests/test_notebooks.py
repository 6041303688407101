"""Every notebook runs top to bottom on CPU (cells flagged slow/gpu are skipped), as `nbdev_test` does."""
import subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip('nbdev')
NOTEBOOKS = sorted(p.name for p in (ROOT / 'nbs').glob('*.ipynb'))

@pytest.mark.parametrize('name', NOTEBOOKS)
def test_notebook_runs(name):
    r = subprocess.run(['nbdev_test', '--path', f'nbs/{name}', '--do_print'], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"nbdev_test failed for nbs/{name}:\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}"
