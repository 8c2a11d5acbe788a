from pathlib import Path

import pytest

from gatehouse.settings import Settings, SettingsError, normalize_database_url


def test_defaults_use_sqlite_in_the_data_dir() -> None:
    settings = Settings.load({})
    assert settings.data_dir == Path(".gatehouse")
    assert settings.resolved_database_url == "sqlite+aiosqlite:///.gatehouse/gatehouse.db"


def test_environment_overrides_yaml_and_secrets_are_referenced(tmp_path: Path) -> None:
    config = tmp_path / "gatehouse.yaml"
    key_file = tmp_path / "upstream.key"
    key_file.write_text("sk-from-file\n")
    config.write_text(
        f"port: 9000\nupstream_url: https://api.anthropic.com\n"
        f"upstream_api_key: {{$file: {key_file}}}\nsecret_key: {{$env: MY_SECRET}}\n"
    )
    env = {"GATEHOUSE_CONFIG": str(config), "GATEHOUSE_PORT": "9100", "MY_SECRET": "s3"}
    settings = Settings.load(env)
    assert settings.port == 9100
    assert settings.upstream_api_key == "sk-from-file"
    assert settings.secret_key == "s3"
    described = settings.describe()
    assert described["upstream_api_key"] == "****"
    assert "sk-from-file" not in str(described)


def test_bad_values_are_reported_by_name(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="'port'"):
        Settings.load({"GATEHOUSE_PORT": "eighty"})
    with pytest.raises(SettingsError, match=r"'rate_limit'.*600/min"):
        Settings.load({"GATEHOUSE_RATE_LIMIT": "lots"})
    config = tmp_path / "c.yaml"
    config.write_text("upstream_api_key: {$env: NOT_SET}\n")
    with pytest.raises(SettingsError, match="NOT_SET"):
        Settings.load({"GATEHOUSE_CONFIG": str(config)})
    config.write_text("no_such_setting: 1\n")
    with pytest.raises(SettingsError, match="no_such_setting"):
        Settings.load({"GATEHOUSE_CONFIG": str(config)})


def test_passwords_in_urls_are_masked_when_described() -> None:
    settings = Settings.load(
        {
            "GATEHOUSE_DATABASE_URL": "postgresql://gh:hunter2@db.internal:5432/gatehouse",
            "GATEHOUSE_REDIS_URL": "redis://:s3cret@cache:6379/0",
        }
    )
    described = str(settings.describe())
    assert "hunter2" not in described
    assert "s3cret" not in described
    assert "postgresql://gh:****@db.internal:5432/gatehouse" in described


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_database_urls_map_to_async_drivers(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected
