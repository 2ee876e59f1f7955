"""Settings from TOML and CONTINUUM_* variables, and secret masking."""

from __future__ import annotations

import logging

import msgspec
import pytest

from continuum.shared.config import load_section, load_settings
from continuum.shared.errors import ConfigError
from continuum.shared.logs import TextFormatter, register_secret


def test_env_overrides_toml(tmp_path):
    config = tmp_path / "continuum.toml"
    config.write_text('log_format = "json"\n[nats]\nurl = "nats://from-file:4222"\nuser = "svc"\n')

    settings = load_settings(config, env={"CONTINUUM_NATS_URL": "nats://from-env:4222", "CONTINUUM_JETSTREAM_REPLICAS": "3"})

    assert settings.nats.url == "nats://from-env:4222"
    assert settings.nats.user == "svc"
    assert settings.jetstream.replicas == 3
    assert settings.log_format == "json"


def test_invalid_value_names_key():
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"CONTINUUM_JETSTREAM_REPLICAS": "three"})

    assert "replicas" in str(caught.value)


def test_unknown_key_in_file_rejected(tmp_path):
    config = tmp_path / "continuum.toml"
    config.write_text("[nats]\nurll = 'nats://typo'\n")

    with pytest.raises(ConfigError, match="urll"):
        load_settings(config, env={})


def test_missing_config_file_is_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", env={})


class Agentish(msgspec.Struct, kw_only=True):
    node_id: str = ""
    labels: dict[str, str] = {}
    peers: list[str] = []


def test_load_section_parses_lists_and_tables(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[agent]\nnode_id = "file-node"\n')

    section = load_section(
        "agent",
        Agentish,
        config,
        env={"CONTINUUM_AGENT_LABELS": "gpu=true,tier=edge", "CONTINUUM_AGENT_PEERS": "n2, n3"},
    )

    assert section.node_id == "file-node"
    assert section.labels == {"gpu": "true", "tier": "edge"}
    assert section.peers == ["n2", "n3"]


def test_redacted_masks_secrets():
    settings = load_settings(env={"CONTINUUM_NATS_PASSWORD": "hunter22", "CONTINUUM_NATS_TOKEN": "tok-123"})

    redacted = settings.redacted()

    assert redacted["nats"]["password"] == "***"
    assert redacted["nats"]["token"] == "***"
    assert "hunter22" not in str(redacted)


def test_registered_secret_never_logged():
    register_secret("s3cr3t-value")
    record = logging.makeLogRecord({"msg": "connecting with %s", "args": ("s3cr3t-value",), "levelname": "INFO", "name": "t"})

    line = TextFormatter().format(record)

    assert "s3cr3t-value" not in line
    assert "***" in line


def test_cli_table_shows_bracketed_text(capsys):
    from continuum.shared.cli.output import print_table

    print_table(None, ["heading"], [["Settings (`[dataprep]`, or CONTINUUM_DATAPREP_*)"]])

    assert "[dataprep]" in capsys.readouterr().out


def test_cli_error_shows_bracketed_text(capsys):
    from continuum.shared.cli.output import fail

    fail("add it to [bridge] allowed_target_networks")

    assert "[bridge]" in capsys.readouterr().err
