"""The live view's data: history on start, then events as they arrive."""

from __future__ import annotations

import asyncio

from continuum.shared import bus, subjects
from continuum.shared.cli.status import PlatformStatus
from continuum.shared.schemas import NodeLifecycle


async def test_status_starts_with_stored_events(nc, js, unique):
    node = f"hist-{unique}"
    await bus.publish(js, subjects.node_lifecycle(node), NodeLifecycle(node_id=node, event="hello"), source="tests")
    status = PlatformStatus(nc, js)

    await status.start()
    await status.stop()

    assert any(f"ctm.node.{node}.lifecycle" in line and "continuum.node.lifecycle.v1" in line for line in status.events)


async def test_status_adds_live_events_first(nc, js, unique):
    status = PlatformStatus(nc, js)
    await status.start()
    node = f"live-{unique}"

    await bus.publish(js, subjects.node_lifecycle(node), NodeLifecycle(node_id=node, event="bye"), source="tests")
    for _ in range(50):
        if status.events and node in status.events[0]:
            break
        await asyncio.sleep(0.05)
    await status.stop()

    assert node in status.events[0]
