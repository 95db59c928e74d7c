"""The distribution holds every folder of the package (a new subpackage is never silently left out)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

tomllib = pytest.importorskip("tomllib") if sys.version_info >= (3, 11) else pytest.importorskip("tomli")


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(path.relative_to(ROOT).parts) for path in (ROOT / "scan_server").rglob("*")
               if path.is_dir() and path.name != "__pycache__" and any(path.iterdir())}
    assert folders | {"scan_server"} <= listed
    assert "scan_client" in listed
