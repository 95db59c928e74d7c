"""A microscope PC installs the client alone: `pip install ./client` in a fresh virtual
environment, and importing it loads no torch, no server and no physics."""

import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "client"


def test_the_client_installs_alone_and_imports_without_the_server(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(CLIENT)], capture_output=True,
                             text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    probe = ("import sys, scan_client, scan_client.protocol; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'torch', 'scan_server', 'fastapi', 'scipy', 'ase', 'h5py', 'matplotlib'}))")
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
    freeze = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True, timeout=120)
    installed = {line.split("==")[0].lower() for line in freeze.stdout.splitlines()}
    assert "torch" not in installed and "fastapi" not in installed
