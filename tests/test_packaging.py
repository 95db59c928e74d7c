"""The distribution holds every folder of the package (found automatically by setup.py: a
new subpackage is never silently left out of a wheel), and the client as scan_client."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_every_package_folder_and_the_client(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--quiet", "-w",
                            str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    assert "would be ignored" not in built.stderr
    wheel = next(tmp_path.glob("adaptive_scan_server-*.whl"))
    folders = {name.rsplit("/", 1)[0] for name in zipfile.ZipFile(wheel).namelist() if "/" in name}
    expected = {path.relative_to(ROOT).as_posix() for path in (ROOT / "scan_server").rglob("*")
                if path.is_dir() and path.name != "__pycache__" and any(p.is_file() for p in path.iterdir())}
    assert expected | {"scan_server"} <= folders
    assert {"scan_client", "scan_server/physics/data"} <= folders
    assert not any(name.startswith("client/") for name in zipfile.ZipFile(wheel).namelist())
