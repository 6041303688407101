"""Repository invariants CI enforces: notebooks are the source (export in sync, notebooks clean), README comes from index.ipynb,
the package does not depend on the dev toolchain, and modules only import the ones above them."""
import ast, configparser, filecmp, json, runpy, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip('nbdev')

def _run(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}"
    return r

def _copy_project(tmp_path):
    dst = tmp_path / 'facebench-copy'
    dst.mkdir()
    for name in ('nbs', 'facebench'):
        shutil.copytree(ROOT / name, dst / name, ignore=shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints'))
    shutil.copy(ROOT / 'settings.ini', dst)
    subprocess.run(['git', 'init', '-q'], cwd=dst, check=True)
    return dst

def _tree(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob('*.py')) if '__pycache__' not in p.parts}

def test_nbdev_export_leaves_the_package_unchanged(tmp_path):
    dst = _copy_project(tmp_path)
    _run(['nbdev_export'], dst)
    before, after = _tree(ROOT / 'facebench'), _tree(dst / 'facebench')
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"nbdev_export changes {changed}: run nbdev_export and commit facebench/"

def test_notebooks_are_clean(tmp_path):
    dst = _copy_project(tmp_path)
    probe = json.loads((dst / 'nbs' / 'index.ipynb').read_text())
    probe['metadata'].update(accelerator='GPU', colab={'gpuType': 'T4'})
    (dst / 'nbs' / '_probe.ipynb').write_text(json.dumps(probe))
    _run(['nbdev_clean'], dst)
    meta = json.loads((dst / 'nbs' / '_probe.ipynb').read_text())['metadata']
    assert meta.get('accelerator') == 'GPU' and meta.get('colab') == {'gpuType': 'T4'}, f"nbdev_clean dropped Colab metadata: {meta}"
    dirty = [p.name for p in sorted((ROOT / 'nbs').rglob('*.ipynb'))
             if p.read_bytes() != (dst / 'nbs' / p.relative_to(ROOT / 'nbs')).read_bytes()]
    assert not dirty, f"nbdev_clean changes {dirty}: run nbdev_clean and commit"

def test_module_notebooks_start_with_the_colab_install_cell_and_keep_gpu_metadata():
    for p in sorted((ROOT / 'nbs').glob('*.ipynb')):
        nb = json.loads(p.read_text())
        first = ''.join(nb['cells'][0]['source'])
        exports = any('#| default_exp' in ''.join(c['source']) for c in nb['cells'])
        if exports:
            assert '#| hide' in first and '[ -e /content ]' in first and 'pip install' in first, f"{p.name}: first cell is not the Colab install cell"
    cfg = configparser.ConfigParser(); cfg.read(ROOT / 'settings.ini')
    assert 'accelerator' in cfg['DEFAULT']['allowed_metadata_keys'].split()

def test_readme_is_generated_from_index():
    mod = runpy.run_path(str(ROOT / '.ci' / 'make_readme.py'))
    assert (ROOT / 'README.md').read_text(encoding='utf-8') == mod['render'](), 'README.md is stale: run python .ci/make_readme.py'

def test_readme_has_exactly_two_commands_and_ci_runs_the_second():
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    blocks = [b.split('```', 1)[0].strip() for b in text.split('```sh\n')[1:]]
    assert len(blocks) == 2 and 'facebench demo --out' in blocks[0], blocks
    ci = (ROOT / '.ci' / 'run').read_text()
    assert 'test-command' in ci and '<!-- test-command -->\n```sh\n' + blocks[1] in text

def test_runtime_requirements_exclude_the_dev_toolchain():
    cfg = configparser.ConfigParser(); cfg.read(ROOT / 'settings.ini')
    req = cfg['DEFAULT']['requirements'].lower()
    for dev in ('nbdev', 'fastcore', 'execnb', 'pytest', 'smplx', 'trimesh'):
        assert dev not in req, f"{dev} must stay in dev_requirements"

# the module picture of the README, top to bottom; a module may import only those above it (same layer included)
LAYERS = [{'core', 'rotations', '_modidx'}, {'models'}, {'io'}, {'render'}, {'viz'}, {'synth'}, {'metrics'}, {'codes'},
          {'n2f', 'aufart'}, {'detail', 'texture'}, {'pipeline', 'demo', 'cli'}]

def _layer(mod):
    for i, layer in enumerate(LAYERS):
        if mod in layer: return i
    raise AssertionError(f"module facebench.{mod} is not in the layer table of tests/test_repo.py (and the README picture)")

def test_modules_only_import_upwards():
    bad = []
    for p in sorted((ROOT / 'facebench').rglob('*.py')):
        rel = p.relative_to(ROOT / 'facebench').with_suffix('')
        if rel.name == '__init__' and len(rel.parts) == 1: continue
        top = rel.parts[0]
        me = _layer(top)
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:   # relative import inside a subpackage
                    base = list(rel.parts[:-node.level]) if node.level <= len(rel.parts) else []
                    targets = [(base + (node.module.split('.') if node.module else []) or [top])[0]]
                elif node.module and node.module.startswith('facebench.'):
                    targets = [node.module.split('.')[1]]
            elif isinstance(node, ast.Import):
                targets = [a.name.split('.')[1] for a in node.names if a.name.startswith('facebench.')]
            for t in targets:
                if t != top and _layer(t) > me: bad.append(f"facebench/{rel}.py imports facebench.{t}")
    assert not bad, 'imports against the module picture: ' + '; '.join(bad)
