"""The journal events' MESSAGE_IDs: docs/events.md and the systemd catalog list exactly them."""

from __future__ import annotations

import re
from pathlib import Path

from gpuwatchd.health.events import MESSAGE_IDS

ROOT = Path(__file__).resolve().parents[2]


def test_docs_list_every_message_id_once_with_its_kind() -> None:
    text = (ROOT / "docs" / "events.md").read_text()
    rows = re.findall(r"^\| `([0-9a-f]{32})` \| `(\w+)` \|", text, re.MULTILINE)
    assert dict((kind, mid) for mid, kind in rows) == MESSAGE_IDS
    assert len(rows) == len(MESSAGE_IDS)


def test_the_systemd_catalog_has_an_entry_per_message_id() -> None:
    text = (ROOT / "packaging" / "systemd" / "gpuwatchd.catalog").read_text()
    ids = re.findall(r"^-- ([0-9a-f]{32})$", text, re.MULTILINE)
    assert sorted(ids) == sorted(MESSAGE_IDS.values())
    assert text.count("Subject: gpuwatchd: ") == len(MESSAGE_IDS)
