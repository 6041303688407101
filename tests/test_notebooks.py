"""Every notebook runs top to bottom on CPU (cells flagged slow/gpu are skipped), with `nbdev_test` exactly as a developer runs it."""
import os, subprocess
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip('nbdev')

def test_all_notebooks_run():
    # one nbdev_test call runs the notebooks in parallel; its output names any notebook that fails
    workers = str(max(1, min(4, os.cpu_count() or 1)))
    r = subprocess.run(['nbdev_test', '--n_workers', workers, '--timing'], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, f"nbdev_test failed:\n{r.stdout[-8000:]}\n{r.stderr[-8000:]}"
