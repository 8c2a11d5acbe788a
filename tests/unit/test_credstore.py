"""The developer's stored login: a 0600 file in a 0700 directory, or nothing."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from gatehouse.cli import credstore


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config"


def test_nothing_stored_is_none() -> None:
    assert credstore.load() is None
    assert credstore.delete() is False


def test_save_load_delete(config_home: Path) -> None:
    path = credstore.save("https://gw.corp/", "ghr_abc", "dev@example.com", use_keyring=False)
    assert path == config_home / "gatehouse" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert credstore.load() == credstore.Stored("https://gw.corp", "ghr_abc", "dev@example.com")
    # A second login replaces the first, still 0600.
    credstore.save("https://gw.corp", "ghr_def", "dev@example.com", use_keyring=False)
    stored = credstore.load()
    assert stored is not None
    assert stored.secret == "ghr_def"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert credstore.delete() is True
    assert credstore.load() is None
    assert not path.exists()


def test_home_config_without_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert credstore.credentials_path() == tmp_path / "home" / ".config/gatehouse/credentials.json"


def test_a_damaged_file_is_an_error_not_a_guess(config_home: Path) -> None:
    path = credstore.credentials_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(credstore.CredstoreError, match="cannot read"):
        credstore.load()
    path.write_text(json.dumps(["x"]))
    with pytest.raises(credstore.CredstoreError, match="not a Gatehouse login file"):
        credstore.load()
