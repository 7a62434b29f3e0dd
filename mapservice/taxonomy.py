"""Categories, resilience domains, audiences and languages — codes and labels, from
``data/taxonomy.yaml`` (data, not code)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .paths import DATA_DIR


@dataclass(frozen=True)
class Taxonomy:
    ui_languages: tuple[str, ...]
    domains: dict[str, dict[str, Any]]
    categories: dict[str, dict[str, Any]]
    audiences: dict[str, dict[str, Any]]
    languages: dict[str, dict[str, Any]]

    def label(self, kind: str, code: str, lang: str) -> str:
        """The label of ``code`` in ``lang``, falling back to English, then the code."""
        entry = getattr(self, kind).get(code)
        if entry is None:
            return code
        labels = entry.get("labels", {})
        return labels.get(lang) or labels.get("en") or code

    def localized(self, kind: str, lang: str) -> list[dict[str, Any]]:
        """Every entry of ``kind`` with its label (and description) in ``lang``."""
        out = []
        for code, entry in getattr(self, kind).items():
            item: dict[str, Any] = {"code": code, "label": self.label(kind, code, lang)}
            if "descriptions" in entry:
                item["description"] = (entry["descriptions"].get(lang)
                                       or entry["descriptions"].get("en"))
            for key in ("domains", "icon", "color", "native"):
                if key in entry:
                    item[key] = entry[key]
            out.append(item)
        return out


def load(path: Path | None = None) -> Taxonomy:
    raw = yaml.safe_load((path or DATA_DIR / "taxonomy.yaml").read_text(encoding="utf-8"))
    return Taxonomy(ui_languages=tuple(raw["languages_ui"]), domains=raw["domains"],
                    categories=raw["categories"], audiences=raw["audiences"],
                    languages=raw["languages"])


@lru_cache(maxsize=1)
def default() -> Taxonomy:
    """The shipped taxonomy, read once per process (it is read-only data)."""
    return load()
