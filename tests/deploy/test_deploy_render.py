"""The accounts renderer: shipped files in step with the inventory, and clear errors."""

from __future__ import annotations

import pytest

from continuum.shared import deploy_config
from continuum.shared.errors import ConfigError

from deploy_support import INVENTORY, NATS_DIR, SITE


def test_shipped_hub_accounts_match_render():
    inventory = deploy_config.load_inventory(INVENTORY)
    assert (NATS_DIR / "hub-accounts.conf").read_text() == deploy_config.render_accounts(inventory, "hub")


def test_shipped_leaf_accounts_match_render():
    inventory = deploy_config.load_inventory(INVENTORY)
    assert (NATS_DIR / "leaf-accounts.conf").read_text() == deploy_config.render_accounts(inventory, "leaf", SITE)


def test_rendered_accounts_contain_no_password():
    inventory = deploy_config.load_inventory(INVENTORY)
    rendered = deploy_config.render_accounts(inventory, "hub")
    passwords = [line for line in rendered.splitlines() if "password:" in line]
    assert passwords
    assert all("password: $CONTINUUM_NATS_PASSWORD_" in line for line in passwords)


def test_agent_permissions_name_only_own_node():
    permissions = deploy_config.agent_permissions("edge-1", "hub")
    named = [subject for subject in permissions.publish + permissions.subscribe if "edge-2" in subject]
    assert named == []
    assert "ctm.telemetry.edge-1" in permissions.publish
    assert "ctm.placement.edge-1" not in permissions.subscribe
    assert "ctm.placement.*" not in permissions.subscribe


def test_duplicate_node_rejected():
    document = {"hub_nodes": ["edge-1"], "sites": {"a": {"nodes": ["edge-1"]}}}
    with pytest.raises(ConfigError, match="'edge-1' in sites.a clashes"):
        deploy_config.parse_inventory(document)


def test_colliding_password_variables_rejected():
    document = {"sites": {"a": {"nodes": ["edge-1", "edge_1"]}}}
    with pytest.raises(ConfigError, match="CONTINUUM_NATS_PASSWORD_AGENT_EDGE_1"):
        deploy_config.parse_inventory(document)


def test_invalid_node_id_rejected():
    with pytest.raises(ConfigError, match=r"sites.a.nodes: invalid node id 'edge.1'"):
        deploy_config.parse_inventory({"sites": {"a": {"nodes": ["edge.1"]}}})


def test_unknown_site_rejected():
    inventory = deploy_config.parse_inventory({"sites": {"a": {"nodes": ["edge-1"]}}})
    with pytest.raises(ConfigError, match="site 'b' is not in the inventory"):
        deploy_config.render_accounts(inventory, "leaf", "b")


def test_unknown_role_rejected():
    with pytest.raises(ConfigError, match="unknown role 'root'"):
        deploy_config.service_permissions("root", "hub")


def test_generated_password_starts_with_letter():
    for _ in range(50):
        password = deploy_config.generate_password()
        assert password[0].isalpha()
        assert password[1:].isalnum()


def test_cli_variables_lists_site_passwords(capsys):
    code = deploy_config.main(["variables", "--inventory", str(INVENTORY), "--server", "leaf", "--site", SITE])
    printed = capsys.readouterr().out.split()
    assert code == 0
    assert "CONTINUUM_NATS_PASSWORD_AGENT_EDGE_1" in printed
    assert "CONTINUUM_NATS_PASSWORD_LEAF_SITE_A" in printed


def test_cli_missing_inventory_exits_2(tmp_path, capsys):
    code = deploy_config.main(["accounts", "--inventory", str(tmp_path / "none.toml"), "--server", "hub"])
    assert code == 2
    assert "not found" in capsys.readouterr().err
