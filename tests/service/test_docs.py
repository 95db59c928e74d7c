"""Every setting is documented."""

from __future__ import annotations

from pathlib import Path

from scan_server.service.settings import ServiceSettings

DOC = Path(__file__).parents[2] / "docs" / "service.md"


def test_every_setting_is_in_the_settings_table():
    text = DOC.read_text()
    for name in ServiceSettings.model_fields:
        assert f"| `{name}` | `SCAN_SERVER_{name.upper()}` |" in text, name
