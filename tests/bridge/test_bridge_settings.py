"""Bridge settings, subject filters, backoff and target checks, without a server."""

from __future__ import annotations

import ipaddress
import logging
import os
import subprocess
import sys

import pytest

from continuum.services.bridge.errors import SettingsError, TargetError
from continuum.services.bridge.outbound import backoff_delay, delivery_id_for
from continuum.services.bridge.settings import load_bridge_settings
from continuum.services.bridge.subscriptions import filters_overlap, subject_matches, validate_filter
from continuum.services.bridge.targets import TargetPolicy, parse_networks
from continuum.shared.errors import ConfigError, SubjectError
from continuum.shared.logs import setup_logging


def test_settings_load_toml_and_secret_file(tmp_path):
    secret_file = tmp_path / "gh.secret"
    secret_file.write_text("file-secret-value\n")
    config = tmp_path / "continuum.toml"
    config.write_text(
        f"""
[bridge]
port = 9000

[bridge.sources.github]
scheme = "github"
secrets = ["inline-secret-value"]
secret_files = ["{secret_file}"]
"""
    )

    settings = load_bridge_settings(str(config), env={})

    assert settings.port == 9000
    assert settings.sources["github"].scheme == "github"
    assert settings.sources["github"].secret_files == [str(secret_file)]


def test_settings_env_overrides_toml(tmp_path):
    env = {
        "CONTINUUM_BRIDGE_PORT": "9100",
        "CONTINUUM_BRIDGE_SOURCES": '{"shop": {"scheme": "hmac", "secrets": ["s3cret-value"]}}',
        "CONTINUUM_BRIDGE_ALLOWED_TARGET_NETWORKS": "127.0.0.0/8,10.0.0.0/8",
    }

    settings = load_bridge_settings(None, env=env)

    assert settings.port == 9100
    assert settings.sources["shop"].secrets == ["s3cret-value"]
    assert settings.allowed_target_networks == ["127.0.0.0/8", "10.0.0.0/8"]


def test_settings_source_without_secret_rejected():
    env = {"CONTINUUM_BRIDGE_SOURCES": '{"github": {"scheme": "github"}}'}

    with pytest.raises(SettingsError, match="has no secret"):
        load_bridge_settings(None, env=env)


def test_settings_missing_secret_file_rejected(tmp_path):
    missing = tmp_path / "absent"
    env = {"CONTINUUM_BRIDGE_SOURCES": f'{{"github": {{"scheme": "github", "secret_files": ["{missing}"]}}}}'}

    with pytest.raises(SettingsError, match="cannot read secret_file"):
        load_bridge_settings(None, env=env)


def test_settings_invalid_source_name_rejected():
    env = {"CONTINUUM_BRIDGE_SOURCES": '{"git.hub": {"scheme": "github", "secrets": ["x-secret"]}}'}

    with pytest.raises(SettingsError, match="git.hub"):
        load_bridge_settings(None, env=env)


def test_secrets_masked_in_logs(capsys):
    env = {"CONTINUUM_BRIDGE_SOURCES": '{"github": {"scheme": "github", "secrets": ["very-secret-token-1"]}}'}
    load_bridge_settings(None, env=env)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    setup_logging("INFO", "text")
    try:
        logging.getLogger("test").warning("leaked very-secret-token-1 here")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)

    captured = capsys.readouterr().err
    assert "very-secret-token-1" not in captured
    assert "leaked *** here" in captured


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("ctm.placement.failed", "ctm.placement.failed", True),
        ("ctm.hook.*.*", "ctm.hook.github.push", True),
        ("ctm.hook.github.*", "ctm.hook.shop.push", False),
        ("ctm.hook.>", "ctm.hook.github.push", True),
        ("ctm.hook.>", "ctm.hook", False),
        ("ctm.*", "ctm.hook.github.push", False),
    ],
)
def test_subject_matches_wildcards(pattern, subject, expected):
    assert subject_matches(pattern, subject) is expected


def test_filters_overlap_cases():
    assert filters_overlap("ctm.>", "ctm.hook.*.*")
    assert filters_overlap("ctm.hook.github.*", "ctm.hook.*.*")
    assert not filters_overlap("ctm.telemetry.*", "ctm.hook.*.*")
    assert not filters_overlap("ctm.hook.github", "ctm.hook.*.*")


def test_filter_outside_consumed_subjects_rejected():
    with pytest.raises(SubjectError, match="matches no event"):
        validate_filter("ctm.telemetry.>")
    with pytest.raises(SubjectError, match="whole token"):
        validate_filter("ctm.hook.git*.push")
    assert validate_filter("ctm.>") == "ctm.>"


def test_backoff_grows_and_stays_capped():
    for attempt, (low, high) in {1: (1.0, 2.0), 2: (2.0, 4.0), 3: (4.0, 8.0), 10: (30.0, 60.0)}.items():
        delays = [backoff_delay(attempt, 2.0, 60.0) for _ in range(50)]
        assert min(delays) >= low, attempt
        assert max(delays) <= high, attempt
    assert backoff_delay(1, 2.0, 60.0, retry_after_s=30.0) >= 30.0


def test_delivery_id_stable_per_subscription():
    assert delivery_id_for("e1", "s1") == delivery_id_for("e1", "s1")
    assert delivery_id_for("e1", "s1") != delivery_id_for("e1", "s2")
    assert delivery_id_for("e1", "s1").startswith("msg_")


async def test_target_policy_rejects_private_addresses():
    policy = TargetPolicy(parse_networks(["10.20.0.0/16"]))
    rejected = ["http://127.0.0.1/x", "http://169.254.10.10/", "http://192.168.1.1/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/"]

    for url in rejected:
        with pytest.raises(TargetError, match="allowed_target_networks"):
            await policy.check(url)
    await policy.check("http://10.20.3.4/allowed")
    policy.check_address(ipaddress.ip_address("93.184.216.34"), "http://example.test")
    with pytest.raises(TargetError, match="credentials"):
        policy.check_url("https://user:pw@example.test/")
    with pytest.raises(TargetError, match="http:// or https://"):
        policy.check_url("file:///etc/passwd")


LOOP_PROBE = """
import asyncio, sys
from continuum.services.bridge.eventloop import install_from_config
print(install_from_config(sys.argv[1:]))
async def probe():
    print(type(asyncio.get_running_loop()).__module__)
asyncio.run(probe())
"""


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("auto", ["uvloop", "uvloop"]), ("uvloop", ["uvloop", "uvloop"]), ("asyncio", ["asyncio", "asyncio.unix_events"])],
)
def test_event_loop_setting_selects_loop(tmp_path, setting, expected):
    # A policy is global to a process, so each choice runs in a fresh interpreter.
    config = tmp_path / "continuum.toml"
    config.write_text(f'[bridge]\nevent_loop = "{setting}"\n')
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONTINUUM_")}

    result = subprocess.run([sys.executable, "-c", LOOP_PROBE, "--config", str(config)], env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == expected


def test_event_loop_invalid_setting_rejected(tmp_path):
    config = tmp_path / "continuum.toml"
    config.write_text('[bridge]\nevent_loop = "tokio"\n')

    with pytest.raises(ConfigError, match="event_loop"):
        load_bridge_settings(str(config), env={})
