"""``recloop.config``: defaults → file → environment → overrides; errors name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from recloop.config import Settings, get_settings, load_settings, reset_settings
from recloop.errors import ConfigError


def test_defaults():
    s = load_settings(env={})
    assert (s.host, s.port, s.api_keys, s.read_requires_key, s.max_k) == (
        "127.0.0.1",
        8000,
        (),
        False,
        1000,
    )
    assert s.model_path is None and s.faiss_threshold == 100_000 and s.log_level == "info"


def test_precedence_file_then_env_then_overrides(tmp_path: Path):
    f = tmp_path / "recloop.toml"
    f.write_text('[serving]\nport = 9001\nhost = "0.0.0.0"\nmax_k = 50\nlog_level = "WARNING"\n')
    env = {"RECLOOP_CONFIG": str(f), "RECLOOP_PORT": "9002", "RECLOOP_API_KEYS": "k1, k2,"}
    s = load_settings(env=env)
    assert (s.host, s.port, s.max_k, s.log_level) == ("0.0.0.0", 9002, 50, "warning")
    assert [k.get_secret_value() for k in s.api_keys] == ["k1", "k2"]
    assert load_settings(env=env, port=9003, host=None).port == 9003
    j = tmp_path / "recloop.json"
    j.write_text(json.dumps({"read_requires_key": True, "model_path": "runs/x"}))
    s = load_settings(env={"RECLOOP_CONFIG": str(j)})
    assert s.read_requires_key and s.model_path == Path("runs/x")


def test_settings_are_frozen():
    s = load_settings(env={})
    with pytest.raises(ValidationError):
        s.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "env, field",
    [
        ({"RECLOOP_PORT": "http"}, "port"),
        ({"RECLOOP_PORT": "70000"}, "port"),
        ({"RECLOOP_MAX_K": "0"}, "max_k"),
        ({"RECLOOP_MAX_K": "5000"}, "max_k"),
        ({"RECLOOP_MAX_BODY_BYTES": "-1"}, "max_body_bytes"),
        ({"RECLOOP_LOG_LEVEL": "loud"}, "log_level"),
        ({"RECLOOP_READ_REQUIRES_KEY": "perhaps"}, "read_requires_key"),
        ({"RECLOOP_HOST": " "}, "host"),
        ({"RECLOOP_CONFIG": "/no/such/file.toml"}, "RECLOOP_CONFIG"),
    ],
)
def test_invalid_settings_name_the_field(env, field):
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        load_settings(env=env)


def test_unknown_and_malformed_files(tmp_path: Path):
    f = tmp_path / "bad.toml"
    f.write_text("prot = 9000\n")
    with pytest.raises(ConfigError, match=r"^prot: unknown setting"):
        load_settings(env={"RECLOOP_CONFIG": str(f)})
    f.write_text("port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(env={"RECLOOP_CONFIG": str(f)})


def test_get_settings_loads_once(monkeypatch):
    reset_settings()
    monkeypatch.setenv("RECLOOP_PORT", "9100")
    first = get_settings()
    monkeypatch.setenv("RECLOOP_PORT", "9200")
    assert get_settings() is first and first.port == 9100
    reset_settings()
    assert get_settings().port == 9200
    reset_settings()


def test_importing_creates_no_settings_or_app():
    import recloop.serving.app as app_module

    assert isinstance(Settings(), Settings)
    assert not any(type(v).__name__ == "FastAPI" for v in vars(app_module).values())
