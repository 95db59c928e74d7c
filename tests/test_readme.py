"""The walk-through blocks of the README and the usage guide (marked ``<!-- readme-test -->``) run as written."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: the documents whose walk-throughs a user copies: the front door and the usage guide it links to
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "usage.md")


def readme_blocks() -> list[str]:
    return [block for document in DOCUMENTS
            for block in re.findall(r"<!-- readme-test -->\n```bash\n(.*?)```", document.read_text(), flags=re.S)]


def test_the_documents_mark_their_walk_through():
    assert readme_blocks(), "no block of the README or docs/usage.md is marked <!-- readme-test -->"


@pytest.mark.parametrize("block", readme_blocks())
def test_a_readme_block_runs_as_written(block, tmp_path):
    """Run in a fresh folder whose ``.venv/bin/activate`` puts this interpreter's environment
    (where the package's console scripts are installed) first on PATH, as `make` would."""
    activate = tmp_path / ".venv" / "bin" / "activate"
    activate.parent.mkdir(parents=True)
    activate.write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
