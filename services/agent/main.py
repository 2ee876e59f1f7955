"""Entry point: `continuum service agent`, `continuum agent` and `python -m continuum.services.agent`.

The agent accepts the service flags of `run_service` plus its own identity
flags; a flag overrides the `[agent]` TOML table and `CONTINUUM_AGENT_*`.
"""

from __future__ import annotations

import argparse
from typing import Any

from continuum.services.agent.config import parse_taint
from continuum.services.agent.service import AgentService
from continuum.shared.errors import ConfigError
from continuum.shared.runtime import run_service
from continuum.shared.schemas.common import Resources


def agent_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--node-id", help="node id (default: stored in the state directory, or generated)")
    parser.add_argument("--zone", help="zone of this node")
    parser.add_argument("--site", help="site of this node")
    parser.add_argument("--label", action="append", default=[], help="node label key=value; repeatable")
    parser.add_argument("--taint", action="append", default=[], help="node taint key=value:Effect; repeatable")
    parser.add_argument("--reserve-cpu-millis", type=int, help="CPU held back for the system, in millicores")
    parser.add_argument("--reserve-memory-mb", type=int, help="memory held back for the system, in MiB")
    parser.add_argument("--reserve-gpus", type=int, help="GPUs held back for the system")
    parser.add_argument("--peer", action="append", default=[], help="node id of a peer agent to measure RTT to; repeatable")
    parser.add_argument("--state-dir", help="directory for the node id, artifact cache and compiled modules")
    parser.add_argument("--telemetry-interval", type=float, help="seconds between telemetry reports")
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Turn parsed flags into AgentSettings overrides; flags not given are left out."""
    overrides: dict[str, Any] = {
        "node_id": args.node_id,
        "zone": args.zone,
        "site": args.site,
        "state_dir": args.state_dir,
        "telemetry_interval_s": args.telemetry_interval,
    }
    if args.label:
        labels = {}
        for item in args.label:
            key, separator, value = item.partition("=")
            if not separator or not key:
                raise ConfigError(f"invalid --label {item!r}: expected key=value")
            labels[key] = value
        overrides["labels"] = labels
    if args.taint:
        overrides["taints"] = [parse_taint(item) for item in args.taint]
    if args.peer:
        overrides["peers"] = list(args.peer)
    if any(value is not None for value in (args.reserve_cpu_millis, args.reserve_memory_mb, args.reserve_gpus)):
        overrides["reserved"] = Resources(
            cpu_millis=args.reserve_cpu_millis or 0, memory_mb=args.reserve_memory_mb or 0, gpus=args.reserve_gpus or 0
        )
    return {key: value for key, value in overrides.items() if value is not None}


def main(argv: list[str] | None = None) -> int:
    args, rest = agent_argument_parser().parse_known_args(argv)
    try:
        overrides = overrides_from(args)
    except ConfigError as exc:
        print(f"error: {exc}")
        return 2
    return run_service("agent", lambda: AgentService(overrides), rest)
