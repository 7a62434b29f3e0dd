"""The demo dataset (``data/demo/resources.json``): fictional listings, clearly labelled."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .paths import DATA_DIR
from .store import Store, UpsertReport

DEMO_FILE = DATA_DIR / "demo" / "resources.json"


def load_demo(store: Store, path: Path = DEMO_FILE) -> UpsertReport:
    """Upsert every demo listing under the source ``demo`` (idempotent)."""
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    orgs = {org["key"]: org for org in doc.get("organizations", [])}
    records = []
    for item in doc["resources"]:
        rec = dict(item)
        org = orgs.get(rec.pop("organization", None) or "")
        if org:
            rec["organization"] = {**org, "source_id": org["key"]}
        desc_en = rec.pop("description_en", None)
        if desc_en:
            rec["translations"] = {"en": {"description": desc_en}}
        records.append(rec)
    store.register_source(doc["source"], licence=doc.get("licence"),
                          attribution=doc.get("attribution"))
    return store.upsert(records, source=doc["source"], changed_by="import:demo")
