"""Settings are data; the README documents every one of them."""
from __future__ import annotations

import re

import pytest

from mapservice import settings

from .conftest import ROOT


def _readme_table() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return dict(re.findall(r"^\| `(MAPSERVICE_[A-Z_]+)` \| (.+?) \|", text, flags=re.M))


def test_every_setting_is_in_the_readme_table():
    table = _readme_table()
    missing = [s.env for s in settings.SETTINGS if s.env not in table]
    assert not missing, f"settings missing from the README's configuration table: {missing}"
    unknown = sorted(set(table) - {s.env for s in settings.SETTINGS})
    assert not unknown, f"README documents settings that do not exist: {unknown}"


def test_readme_defaults_match_the_code():
    table = _readme_table()
    for s in settings.SETTINGS:
        shown = table[s.env]
        if s.default == "":
            assert "empty" in shown, s.env
        else:
            assert shown == f"`{s.default}`", (s.env, shown)


def test_environment_is_read_and_typed():
    values = settings.load({"MAPSERVICE_MAP_ZOOM": "13", "MAPSERVICE_TILE_URL": "http://t/{z}"})
    assert values["MAP_ZOOM"] == 13 and values["TILE_URL"] == "http://t/{z}"
    with pytest.raises(settings.SettingError, match="MAPSERVICE_MAP_ZOOM"):
        settings.load({"MAPSERVICE_MAP_ZOOM": "eleven"})


def test_secret_key_is_created_once_and_shared(tmp_path):
    first = settings.resolve({**settings.load({}), "INSTANCE_DIR": str(tmp_path)})
    second = settings.resolve({**settings.load({}), "INSTANCE_DIR": str(tmp_path)})
    assert first["SECRET_KEY"] == second["SECRET_KEY"] and len(first["SECRET_KEY"]) == 64
    assert first["DATABASE_URL"] == f"sqlite:///{tmp_path / 'mapservice.sqlite'}"


def test_server_settings_are_checked(tmp_path):
    base = {**settings.load({}), "INSTANCE_DIR": str(tmp_path)}
    assert base["WORKERS"] >= 1 and base["THREADS"] >= 1
    assert base["ACCESS_LOG"] is False and base["PROXY_COUNT"] == 0
    assert settings.load({"MAPSERVICE_ACCESS_LOG": "yes"})["ACCESS_LOG"] is True
    with pytest.raises(settings.SettingError, match="MAPSERVICE_ACCESS_LOG"):
        settings.load({"MAPSERVICE_ACCESS_LOG": "sometimes"})
    for key, bad in (("WORKERS", 0), ("THREADS", 0), ("PROXY_COUNT", -1)):
        with pytest.raises(settings.SettingError, match=f"MAPSERVICE_{key}: must be at least"):
            settings.resolve({**base, key: bad})


@pytest.mark.parametrize("name, value, message", [
    ("MAPSERVICE_WORKERS", "two", "MAPSERVICE_WORKERS: expected a whole number, got 'two'"),
    ("MAPSERVICE_THREADS", "0", "MAPSERVICE_THREADS: must be at least 1, got 0"),
    ("MAPSERVICE_GEOCODER_TIMEOUT_S", "soon",
     "MAPSERVICE_GEOCODER_TIMEOUT_S: expected a number, got 'soon'"),
])
def test_a_wrong_setting_stops_the_cli_with_its_name_and_no_traceback(tmp_path, name, value,
                                                                     message):
    import os
    import subprocess
    import sys

    env = {**os.environ, name: value, "MAPSERVICE_INSTANCE_DIR": str(tmp_path),
           "MAPSERVICE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    done = subprocess.run([sys.executable, "-m", "mapservice", "serve"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == f"Error: configuration: {message}", done.stderr
    listed = subprocess.run([sys.executable, "-m", "mapservice", "--help"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert listed.stderr.strip() == f"Error: configuration: {message}", listed.stderr
    assert "Usage: " in listed.stdout


def test_the_data_language_is_a_language_tag(tmp_path):
    from mapservice import create_app

    for good in ("de", "pt-BR", ""):
        app = create_app({"DATABASE_URL": "sqlite://", "INSTANCE_DIR": str(tmp_path),
                          "DATA_LANGUAGE": good})
        assert app.config["DATA_LANGUAGE"] == good
    with pytest.raises(settings.SettingError, match="MAPSERVICE_DATA_LANGUAGE: expected a "
                                                    "language tag"):
        create_app({"DATABASE_URL": "sqlite://", "INSTANCE_DIR": str(tmp_path),
                    "DATA_LANGUAGE": "de\"><script>"})
