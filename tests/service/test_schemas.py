"""The committed protocol schema is the one the code validates against."""

from __future__ import annotations

import json
from pathlib import Path

from scan_server.service.schemas import protocol_json_schema

COMMITTED = Path(__file__).parents[2] / "docs" / "protocol-v1.schema.json"


def test_committed_protocol_schema_is_current():
    assert json.loads(COMMITTED.read_text()) == protocol_json_schema(), \
        "regenerate: python -m scan_server.service.schemas > docs/protocol-v1.schema.json"
