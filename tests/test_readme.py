"""The README's walk-through blocks (marked ``<!-- readme-test -->``) run as written."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_blocks() -> list[str]:
    return re.findall(r"<!-- readme-test -->\n```bash\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_marks_its_walk_through():
    assert readme_blocks(), "no README block is marked <!-- readme-test -->"


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
