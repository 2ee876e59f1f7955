"""Render the NATS accounts file of a Continuum deployment from a site inventory.

nats-server config files cannot build a subject from a variable, so the
per-node agent users (each allowed only its own node's subjects) are
generated here from an inventory TOML file:

    hub_domain = "hub"
    hub_nodes = ["cloud-1"]          # agents that connect to the hub directly

    [sites.factory-1]
    nodes = ["edge-1", "edge-2"]     # agents that connect to this site's leaf node
    functions = ["*"]                # functions their agents may serve; "*" for any

The rendered file contains no secret: every password is a `$VARIABLE` that
nats-server reads from its environment at start-up, and start-up fails with
the variable's name when it is not set. `variables` lists the names.

    python -m continuum.shared.deploy_config accounts --inventory FILE --server hub
    python -m continuum.shared.deploy_config accounts --inventory FILE --server leaf --site factory-1
    python -m continuum.shared.deploy_config variables --inventory FILE --server hub
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from continuum.shared import subjects
from continuum.shared.config import load_settings
from continuum.shared.errors import ConfigError, ContinuumError, SubjectError
from continuum.shared.topology import find_consumer

ACCOUNT = "CONTINUUM"
SYSTEM_ACCOUNT = "SYS"
PASSWORD_PREFIX = "CONTINUUM_NATS_PASSWORD_"
# User that hub nodes log in as on each other's cluster port.
ROUTE_USER = "route"

ServerKind = Literal["hub", "leaf"]

# Control-plane roles; agents and leaf connections get per-node and per-site users.
FUNCTION_WILDCARD = f"{subjects.ROOT}.fn.*"

SERVICE_ROLES = ("scheduler", "dataprep", "vectordb", "guardrails", "bridge", "workflow", "admin")


@dataclass(frozen=True)
class Permissions:
    """Subjects a user may publish to and subscribe to; everything else is denied."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = False

    def union(self, other: Permissions) -> Permissions:
        return Permissions(
            _unique((*self.publish, *other.publish)),
            _unique((*self.subscribe, *other.subscribe)),
            self.allow_responses or other.allow_responses,
        )


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


# JetStream access --------------------------------------------------------
#
# A client reaches JetStream API subjects as `$JS.API.<op>` in its own
# domain or `$JS.<domain>.API.<op>` in a named one: agents behind a leaf
# node use the hub's domain. Permissions are checked on the subject as sent,
# so every grant carries both forms.


def js_api(domain: str, *operations: str) -> tuple[str, ...]:
    return _unique(prefix + operation for operation in operations for prefix in ("$JS.API.", f"$JS.{domain}.API."))


def durable_access(domain: str, stream: str, durable: str, filter_subject: str | None = None) -> Permissions:
    """Bind to, fetch from and ack one durable pull consumer, and nothing else on its stream.

    With `filter_subject`, the client may create the consumer itself, but
    only with that filter: the server rejects a create request whose body
    names another filter than the subject. Without it, the consumer must
    already exist (created by `continuum provision` or by a client that may
    create it).
    """
    operations = [
        f"STREAM.INFO.{stream}",
        f"CONSUMER.INFO.{stream}.{durable}",
        f"CONSUMER.MSG.NEXT.{stream}.{durable}",
    ]
    if filter_subject is None:
        operations += [f"CONSUMER.CREATE.{stream}.{durable}", f"CONSUMER.CREATE.{stream}.{durable}.>"]
    else:
        operations.append(f"CONSUMER.CREATE.{stream}.{durable}.{filter_subject}")
    # Ack subjects: `$JS.ACK.<stream>.<durable>...`, or with the domain and
    # account hash tokens in front of the stream name.
    acks = (f"$JS.ACK.{stream}.{durable}.>", f"$JS.ACK.*.*.{stream}.{durable}.>")
    return Permissions(js_api(domain, *operations) + acks, ())


def ordered_consumer_access(domain: str, stream: str) -> Permissions:
    """Create, read and delete ephemeral ordered consumers (KV watchers, object reads) on a stream."""
    publish = js_api(
        domain,
        f"STREAM.INFO.{stream}",
        f"CONSUMER.CREATE.{stream}",
        f"CONSUMER.CREATE.{stream}.>",
        f"CONSUMER.DELETE.{stream}.>",
        f"CONSUMER.INFO.{stream}.>",
        f"STREAM.MSG.GET.{stream}",
        f"DIRECT.GET.{stream}",
        f"DIRECT.GET.{stream}.>",
    )
    # Ordered push consumers send flow-control requests that the client replies to.
    return Permissions(publish + (f"$JS.FC.{stream}.>",), ())


def kv_access(domain: str, bucket: str, *, write: bool) -> Permissions:
    read = ordered_consumer_access(domain, f"KV_{bucket}")
    if not write:
        return read
    return read.union(Permissions((f"$KV.{bucket}.>",) + js_api(domain, f"STREAM.PURGE.KV_{bucket}"), ()))


def object_access(domain: str, bucket: str, *, write: bool) -> Permissions:
    read = ordered_consumer_access(domain, f"OBJ_{bucket}")
    if not write:
        return read
    return read.union(Permissions((f"$O.{bucket}.>",) + js_api(domain, f"STREAM.PURGE.OBJ_{bucket}"), ()))


def micro_service(*endpoint_subjects: str) -> Permissions:
    """Serve request/reply endpoints as a NATS micro service with `$SRV` discovery."""
    return Permissions(("$SRV.>",), (*endpoint_subjects, "$SRV.>"))


# Every client reads replies (PubAcks, request replies, pulled messages) on
# its inbox and checks at start-up that the declared topology exists.
# A subscription without a stream name (the scheduler's ordered consumers)
# looks its stream up by subject through STREAM.NAMES.
def client_base(domain: str) -> Permissions:
    return Permissions(
        js_api(domain, "INFO", "STREAM.NAMES", "STREAM.INFO.*", "CONSUMER.INFO.*.*"), ("_INBOX.>",), allow_responses=True
    )


# Roles -------------------------------------------------------------------


def agent_permissions(node_id: str, domain: str, functions: Iterable[str] = ("*",)) -> Permissions:
    """Return an agent's permissions, limited to its own node: telemetry, lifecycle, placements and ping."""
    subjects.validate_node_id(node_id)
    function_subjects = tuple(FUNCTION_WILDCARD if name == "*" else subjects.function(name) for name in functions)
    own = Permissions(
        publish=(
            subjects.telemetry(node_id),
            subjects.node_lifecycle(node_id),
            subjects.ALL_WORKLOAD_STATUS,
            # RTT probes to other agents.
            "ctm.agent.*.ping",
            # Requests for more replicas of a busy function.
            subjects.api("autoscale"),
        ),
        subscribe=(subjects.agent_ping(node_id), *function_subjects),
        allow_responses=True,
    )
    return (
        client_base(domain)
        .union(own)
        .union(durable_access(domain, "PLACEMENTS", agent_durable(node_id), subjects.placement(node_id)))
        .union(replay_access(domain, node_id))
        .union(kv_access(domain, "ctm-workloads", write=False))
        .union(object_access(domain, "ctm-artifacts", write=False))
    )


def replay_access(domain: str, node_id: str) -> Permissions:
    """Read the node's stored placements at start through a short-lived consumer of its own filter."""
    replay = f"{agent_durable(node_id)}-replay"
    placement = subjects.placement(node_id)
    return Permissions(
        js_api(
            domain,
            f"CONSUMER.CREATE.PLACEMENTS.{replay}.{placement}",
            f"CONSUMER.INFO.PLACEMENTS.{replay}",
            f"CONSUMER.MSG.NEXT.PLACEMENTS.{replay}",
            f"CONSUMER.DELETE.PLACEMENTS.{replay}",
        ),
        (),
    )


def agent_durable(node_id: str) -> str:
    """Name of the durable consumer through which an agent reads its placements."""
    return f"agent-{subjects.validate_node_id(node_id)}"


def dead_letters(*streams: str) -> Permissions:
    return Permissions(tuple(subjects.dlq(stream) for stream in streams), ())


def declared_durable(domain: str, durable: str) -> Permissions:
    """Use a durable consumer that `continuum provision` declares, with its declared filter only."""
    spec = find_consumer(durable)
    filter_subject = spec.filter_subjects[0] if len(spec.filter_subjects) == 1 else None
    return durable_access(domain, spec.stream, durable, filter_subject)


def micro_endpoints(prefix: str, *names: str) -> tuple[str, ...]:
    return tuple(f"{prefix}.{name}" for name in names)


# Endpoints each service registers, as its code names them.
SCHEDULER_ENDPOINTS = micro_endpoints(
    "ctm.api",
    "deploy", "delete", "scale", "get", "workloads", "nodes", "node", "cordon", "uncordon", "drain", "explain", "autoscale",
)
BRIDGE_ENDPOINTS = micro_endpoints("ctm.api", "webhooks_add", "webhooks_list", "webhooks_remove", "webhooks_deliveries")
VECTORDB_ENDPOINTS = micro_endpoints("ctm.vector", "query", "collections", "stats", "delete_document", "drop", "maintain")
GUARDRAILS_ENDPOINTS = micro_endpoints("ctm.guard", "check", "policies")
WORKFLOW_ENDPOINTS = ("ctm.rag.*",)
BRIDGE_FAN_OUT = ("bridge-placements", "bridge-ingest-status", "bridge-guard-blocked", "bridge-hooks", "bridge-deliveries")


def service_permissions(role: str, domain: str) -> Permissions:
    """Permissions of one control-plane role; raises ConfigError for an unknown role.

    Each grant follows what the service's code does; the services only read
    the topology at start-up, which `continuum provision` (admin) creates.
    """
    base = client_base(domain)
    if role == "admin":
        # The CLI provisions the topology, manages workloads and reads everything.
        return Permissions((">",), (">",))
    if role == "scheduler":
        # Ordered consumers on telemetry, lifecycle and status; key-value
        # watchers and writes; placements published to agents.
        return (
            base.union(Permissions(publish=(subjects.ALL_PLACEMENTS, subjects.PLACEMENT_FAILED), subscribe=()))
            .union(micro_service(*SCHEDULER_ENDPOINTS))
            .union(ordered_consumer_access(domain, "TELEMETRY"))
            .union(ordered_consumer_access(domain, "NODES"))
            .union(ordered_consumer_access(domain, "WORKLOAD_STATUS"))
            .union(kv_access(domain, "ctm-workloads", write=True))
            .union(kv_access(domain, "ctm-nodes", write=True))
            .union(kv_access(domain, "ctm-scheduler", write=True))
            .union(kv_access(domain, "ctm-bindings", write=True))
            # Undecodable reports are dead-lettered.
            .union(dead_letters("TELEMETRY", "NODES", "WORKLOAD_STATUS"))
        )
    if role == "dataprep":
        return (
            base.union(Permissions(publish=(subjects.ALL_INGEST_STATUS, subjects.ALL_CHUNKS), subscribe=()))
            .union(micro_service(subjects.EMBED))
            .union(declared_durable(domain, "dataprep"))
            .union(object_access(domain, "ctm-documents", write=False))
            .union(dead_letters("INGEST"))
        )
    if role == "vectordb":
        return (
            base.union(micro_service(*VECTORDB_ENDPOINTS))
            # Query texts are embedded by the data prep service.
            .union(Permissions(publish=(subjects.EMBED,), subscribe=()))
            .union(declared_durable(domain, "vectordb"))
            # One committing writer per collection: a lock key per collection.
            .union(kv_access(domain, "ctm-vectordb-locks", write=True))
            .union(dead_letters("CHUNKS"))
        )
    if role == "guardrails":
        return (
            base.union(Permissions(publish=("ctm.guard.out.*", "ctm.guard.blocked.*", "ctm.guard.audit.*"), subscribe=()))
            .union(micro_service(*GUARDRAILS_ENDPOINTS))
            .union(declared_durable(domain, "guardrails"))
            # Policies are written by the CLI; the service only watches them.
            .union(kv_access(domain, "ctm-guard-policies", write=False))
            .union(dead_letters("GUARD"))
        )
    if role == "bridge":
        # Inbound hooks, outbound fan-out through durable consumers, deliveries and their attempt records.
        durables = Permissions((), ())
        for durable in BRIDGE_FAN_OUT:
            durables = durables.union(declared_durable(domain, durable))
        streams = sorted({find_consumer(durable).stream for durable in BRIDGE_FAN_OUT})
        return (
            base.union(Permissions(
                publish=(subjects.ALL_HOOKS, subjects.ALL_WEBHOOK_DELIVERIES, subjects.ALL_WEBHOOK_ATTEMPTS), subscribe=()
            ))
            .union(micro_service(*BRIDGE_ENDPOINTS))
            .union(durables)
            .union(kv_access(domain, "ctm-webhook-subscriptions", write=True))
            # `webhooks_deliveries` reads attempt records through a short-lived consumer.
            .union(ordered_consumer_access(domain, "WEBHOOK_ATTEMPTS"))
            .union(Permissions(js_api(domain, "CONSUMER.MSG.NEXT.WEBHOOK_ATTEMPTS.*"), ()))
            .union(dead_letters(*streams))
        )
    if role == "workflow":
        # The RAG workflow checks questions with guardrails and queries the vector DB.
        return (
            base.union(Permissions(publish=(subjects.guard("check"), subjects.vector("query")), subscribe=()))
            .union(micro_service(*WORKFLOW_ENDPOINTS))
        )
    raise ConfigError(f"unknown role {role!r}; choose one of: {', '.join(SERVICE_ROLES)}", key="role")


def leaf_permissions(site: Site, domain: str) -> Permissions:
    """Return what a site's leaf connection may carry: the union of its agents' subjects, both ways.

    The hub applies a leaf user's permissions to traffic in both directions,
    so the same set is granted for publish and subscribe. Agents are checked
    one by one on the leaf node itself.
    """
    combined = Permissions((), ())
    for node_id in site.nodes:
        combined = combined.union(agent_permissions(node_id, domain, site.functions))
    both = _unique((*combined.publish, *combined.subscribe, "_INBOX.>"))
    return Permissions(both, both)


# Inventory ---------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """An edge site: one leaf node and the agents that connect to it."""

    name: str
    nodes: tuple[str, ...]
    functions: tuple[str, ...] = ("*",)

    @property
    def domain(self) -> str:
        """JetStream domain of the site's leaf node."""
        return f"edge-{self.name}"


@dataclass(frozen=True)
class Inventory:
    hub_domain: str = "hub"
    hub_nodes: tuple[str, ...] = ()
    sites: dict[str, Site] = field(default_factory=dict)

    def site(self, name: str) -> Site:
        if name not in self.sites:
            known = ", ".join(sorted(self.sites)) or "none"
            raise ConfigError(f"site {name!r} is not in the inventory (sites: {known}); add it under [sites.{name}]", key="site")
        return self.sites[name]


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate an inventory TOML file; raises ConfigError naming the bad entry."""
    file = Path(path)
    try:
        document = tomllib.loads(file.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"inventory file {str(file)!r} not found", key="inventory") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"inventory file {str(file)!r} is not valid TOML: {exc}", key="inventory") from exc
    return parse_inventory(document, where=str(file))


def parse_inventory(document: dict[str, object], *, where: str = "inventory") -> Inventory:
    unknown = set(document) - {"hub_domain", "hub_nodes", "sites"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; expected hub_domain, hub_nodes and [sites.NAME]")

    hub_domain = _name(document.get("hub_domain", "hub"), f"{where}: hub_domain")
    hub_nodes = _node_list(document.get("hub_nodes", []), f"{where}: hub_nodes")
    raw_sites = document.get("sites", {})
    if not isinstance(raw_sites, dict):
        raise ConfigError(f"{where}: sites must be a table of [sites.NAME] entries")

    sites = {}
    for name, entry in raw_sites.items():
        _name(name, f"{where}: site name")
        if not isinstance(entry, dict) or set(entry) - {"nodes", "functions"}:
            raise ConfigError(f"{where}: [sites.{name}] may contain only `nodes` and `functions`")
        nodes = _node_list(entry.get("nodes", []), f"{where}: sites.{name}.nodes")
        functions = entry.get("functions", ["*"])
        if not isinstance(functions, list) or not functions:
            raise ConfigError(f"{where}: sites.{name}.functions must be a non-empty list of names or \"*\"")
        for function in functions:
            if function != "*":
                _name(function, f"{where}: sites.{name}.functions")
        sites[name] = Site(name, nodes, tuple(functions))

    inventory = Inventory(hub_domain, hub_nodes, sites)
    _check_unique_nodes(inventory, where)
    return inventory


def _name(value: object, where: str) -> str:
    try:
        return subjects.validate_name(value, kind="name")  # type: ignore[arg-type]
    except SubjectError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _node_list(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list of node ids, got {type(value).__name__}")
    try:
        return tuple(subjects.validate_node_id(node) for node in value)
    except SubjectError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _check_unique_nodes(inventory: Inventory, where: str) -> None:
    """Reject a node listed twice, or two nodes whose password variables would collide."""
    seen: dict[str, str] = {}
    placed = [(node, "hub_nodes") for node in inventory.hub_nodes]
    placed += [(node, f"sites.{site.name}") for site in inventory.sites.values() for node in site.nodes]
    for node, place in placed:
        variable = password_variable(agent_user(node))
        if variable in seen:
            raise ConfigError(
                f"{where}: node {node!r} in {place} clashes with {seen[variable]} (both use ${variable}); rename one"
            )
        seen[variable] = f"{node!r} in {place}"


# Rendering ---------------------------------------------------------------


def agent_user(node_id: str) -> str:
    return f"agent-{node_id}"


def leaf_user(site: str) -> str:
    return f"leaf-{site}"


def password_variable(user: str) -> str:
    """Return the environment variable that contains a user's password: CONTINUUM_NATS_PASSWORD_<USER>."""
    return PASSWORD_PREFIX + re.sub(r"[^A-Z0-9]", "_", user.upper())


@dataclass(frozen=True)
class User:
    name: str
    permissions: Permissions


def users_for(inventory: Inventory, server: ServerKind, site: str | None = None) -> list[User]:
    """Return the users a hub or a site's leaf node accepts, in a stable order."""
    domain = inventory.hub_domain
    if server == "leaf":
        if site is None:
            raise ConfigError("a leaf node's accounts need --site NAME", key="site")
        chosen = inventory.site(site)
        return [User(agent_user(node), agent_permissions(node, domain, chosen.functions)) for node in chosen.nodes]

    users = [User(role, service_permissions(role, domain)) for role in SERVICE_ROLES]
    users += [User(agent_user(node), agent_permissions(node, domain)) for node in inventory.hub_nodes]
    users += [User(leaf_user(name), leaf_permissions(entry, domain)) for name, entry in sorted(inventory.sites.items())]
    return users


def _subject_list(items: Iterable[str], indent: str) -> str:
    inner = "".join(f'{indent}  "{item}"\n' for item in items)
    return f"[\n{inner}{indent}]"


def _render_user(user: User) -> str:
    indent = " " * 12
    lines = [
        "      {",
        f'        user: "{user.name}"',
        f"        password: ${password_variable(user.name)}",
        "        permissions: {",
        f"          publish: {{ allow: {_subject_list(user.permissions.publish, indent)} }}",
        f"          subscribe: {{ allow: {_subject_list(user.permissions.subscribe, indent)} }}",
    ]
    if user.permissions.allow_responses:
        # Lets the user reply once to each request it received, on the request's reply subject only.
        lines.append("          allow_responses: true")
    lines += ["        }", "      }"]
    return "\n".join(lines)


def render_accounts(inventory: Inventory, server: ServerKind, site: str | None = None) -> str:
    """Render the `accounts` block that hub.conf or leaf.conf includes."""
    users = users_for(inventory, server, site)
    where = "the hub" if server == "hub" else f"the leaf node of site {site}"
    body = ",\n".join(_render_user(user) for user in users)
    return (
        f"# Accounts and users of {where}. Generated by\n"
        f"# `python -m continuum.shared.deploy_config accounts --server {server}"
        f"{f' --site {site}' if site else ''}`; edit the inventory, not this file.\n"
        "# Passwords are read from the environment; nothing secret is stored here.\n"
        "accounts {\n"
        f"  {ACCOUNT}: {{\n"
        "    jetstream: enabled\n"
        "    users: [\n"
        f"{body}\n"
        "    ]\n"
        "  }\n"
        f"  {SYSTEM_ACCOUNT}: {{\n"
        "    users: [\n"
        f'      {{ user: "system", password: ${password_variable("system")} }}\n'
        "    ]\n"
        "  }\n"
        "}\n"
        f"system_account: {SYSTEM_ACCOUNT}\n"
    )


def generate_password() -> str:
    """Return a random password that nats-server reads back unchanged from an environment variable.

    nats-server parses a variable's value as a config value, so a value that
    starts with a digit or a sign, or reads as a boolean, is not taken as a
    string. A letter followed by hex digits always is.
    """
    return "p" + secrets.token_hex(24)


def required_variables(inventory: Inventory, server: ServerKind, site: str | None = None) -> list[str]:
    """Password variables the server needs at start-up (a leaf also needs its own hub password)."""
    names = [password_variable(user.name) for user in users_for(inventory, server, site)]
    names.append(password_variable("system"))
    if server == "hub":
        names.append(password_variable(ROUTE_USER))
    if server == "leaf" and site is not None:
        names.append(password_variable(leaf_user(site)))
    return names


async def check_connection() -> int:
    """Connect with the settings from CONTINUUM_* variables; the container health check."""
    from continuum.shared import bus

    try:
        nc = await bus.connect(load_settings(), name="continuum-healthcheck")
    except ContinuumError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    await nc.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m continuum.shared.deploy_config", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("password", help="print a new random password for a CONTINUUM_NATS_PASSWORD_* variable")
    commands.add_parser("healthcheck", help="exit 0 when NATS accepts this process's configured credentials")
    for name, help_text in (("accounts", "print the accounts block for a server"), ("variables", "print the password variables it needs")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--inventory", required=True, help="inventory TOML file")
        command.add_argument("--server", choices=("hub", "leaf"), required=True, help="which server the file is for")
        command.add_argument("--site", help="site name (required with --server leaf)")
    args = parser.parse_args(argv)
    if args.command == "password":
        print(generate_password())
        return 0
    if args.command == "healthcheck":
        return asyncio.run(check_connection())

    try:
        inventory = load_inventory(args.inventory)
        if args.command == "accounts":
            sys.stdout.write(render_accounts(inventory, args.server, args.site))
        else:
            sys.stdout.write("".join(f"{name}\n" for name in required_variables(inventory, args.server, args.site)))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
