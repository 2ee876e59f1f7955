"""The policies in force: loaded from files at start, then updated from the `ctm-guard-policies` bucket.

Each key of the bucket is a policy name and each value a YAML, TOML or JSON
document. A put replaces the policy only when the new document validates.
Otherwise the previous policy stays in force, and the rejection (revision and
reason) is logged and kept for `ctm.guard.policies` to report. Deleting a key
returns the policy to its file version, or removes it when no file defines it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import nats.errors
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from continuum.services.guardrails.errors import PolicyError
from continuum.services.guardrails.policy import Policy, parse_policy
from continuum.shared.schemas.guard import GuardPolicyInfo

logger = logging.getLogger(__name__)

POLICY_BUCKET = "ctm-guard-policies"


@dataclass(frozen=True)
class Rejection:
    revision: int
    reason: str


class PolicyStore:
    """Named policies; a read is a plain dict lookup, so a check does not wait for the watcher."""

    def __init__(self, file_policies: list[Policy]) -> None:
        self._files = {policy.name: policy for policy in file_policies}
        self._policies = dict(self._files)
        self._rejections: dict[str, Rejection] = {}
        self._watch_task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None
        self.ready = asyncio.Event()

    def get(self, name: str) -> Policy | None:
        return self._policies.get(name)

    def names(self) -> list[str]:
        return sorted(self._policies)

    def rejection(self, name: str) -> Rejection | None:
        return self._rejections.get(name)

    def apply(self, key: str, value: bytes, revision: int) -> Policy:
        """Validate and install a policy from the bucket; raise PolicyError and keep the old one when invalid."""
        source = f"{POLICY_BUCKET}/{key}@{revision}"
        try:
            policy = parse_policy(value, source=source, name_hint=key, revision=revision)
        except PolicyError as exc:
            self._rejections[key] = Rejection(revision, str(exc))
            in_force = self._policies.get(key)
            logger.error(
                "policy update rejected; %s stays in force: %s",
                f"revision {in_force.revision} from {in_force.source}" if in_force else "no policy of that name",
                exc,
                extra={"policy": key, "revision": revision},
            )
            raise
        self._policies[key] = policy
        self._rejections.pop(key, None)
        logger.info("policy updated from %s", source, extra={"policy": key, "revision": revision})
        return policy

    def remove(self, key: str, revision: int) -> None:
        """Drop the bucket's version of a policy; the file version, if any, comes back."""
        self._rejections.pop(key, None)
        if key in self._files:
            self._policies[key] = self._files[key]
            logger.info("policy key deleted; the file version is back in force", extra={"policy": key, "revision": revision})
        else:
            self._policies.pop(key, None)
            logger.info("policy key deleted; the policy is removed", extra={"policy": key, "revision": revision})

    def info(self, name: str) -> GuardPolicyInfo:
        policy = self._policies.get(name)
        rejection = self._rejections.get(name)
        detectors: dict[str, list[str]] = {}
        if policy is not None:
            for stage, active in policy.stages.items():
                for item in active:
                    detectors.setdefault(item.detector.name, []).append(stage)
        return GuardPolicyInfo(
            name=name,
            description=policy.description if policy else "",
            source=policy.source if policy else "",
            revision=policy.revision if policy else 0,
            detectors=detectors,  # type: ignore[arg-type]
            rejected_revision=rejection.revision if rejection else None,
            rejected_reason=rejection.reason if rejection else None,
        )

    async def start_watch(self, kv: KeyValue) -> None:
        """Apply every key in the bucket, then follow updates in the background; returns once caught up."""
        self._watcher = await kv.watchall()
        self._watch_task = asyncio.create_task(self._follow(self._watcher), name="guard-policy-watch")
        await self.ready.wait()

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        try:
            while True:
                try:
                    entry = await watcher.updates(timeout=30.0)
                except nats.errors.TimeoutError:
                    continue
                if entry is None:
                    self.ready.set()
                    continue
                if not isinstance(entry, KeyValue.Entry):
                    return  # the watcher was stopped
                self._handle_entry(entry)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a dead watcher would freeze policies silently
            logger.error("policy watch stopped; policies no longer follow the bucket", exc_info=True)
            self.ready.set()

    def _handle_entry(self, entry: KeyValue.Entry) -> None:
        if entry.operation in (KV_DEL, KV_PURGE):
            self.remove(entry.key, entry.revision)
            return
        try:
            self.apply(entry.key, entry.value or b"", entry.revision)
        except PolicyError:
            pass  # logged and recorded by apply()

    async def stop(self) -> None:
        if self._watcher is not None:
            try:
                await self._watcher.stop()
            except Exception:  # noqa: BLE001 - the connection may already be closed
                logger.debug("policy watcher stop failed", exc_info=True)
        if self._watch_task is not None:
            self._watch_task.cancel()
            try:
                await self._watch_task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping anyway
                pass
