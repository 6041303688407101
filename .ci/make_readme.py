"""Write README.md from nbs/index.ipynb (nbdev's nbdev_readme needs quarto, which these machines cannot install).

Usage: python .ci/make_readme.py [--check]   (--check exits 1 when README.md differs from what it would write)"""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def render(nb_path=ROOT / 'nbs' / 'index.ipynb') -> str:
    "Markdown cells verbatim; code cells as python blocks unless hidden (`#| hide`) or directives only."
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    parts = []
    for cell in nb['cells']:
        src = ''.join(cell['source'])
        if cell['cell_type'] == 'markdown':
            parts.append(src.strip())
        elif cell['cell_type'] == 'code':
            lines = src.splitlines()
            if any(re.match(r'^#\|\s*hide\b', l) for l in lines): continue
            code = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
            if code: parts.append('```python\n' + code + '\n```')
    head = '<!-- generated from nbs/index.ipynb by .ci/make_readme.py: edit the notebook, not this file -->\n\n'
    return head + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text, readme = render(), ROOT / 'README.md'
    if '--check' in sys.argv:
        ok = readme.exists() and readme.read_text(encoding='utf-8') == text
        print('README.md agrees with nbs/index.ipynb' if ok else 'README.md differs from nbs/index.ipynb: run python .ci/make_readme.py')
        sys.exit(0 if ok else 1)
    readme.write_text(text, encoding='utf-8')
    print(f'wrote {readme}')
