"""Liveness transitions of the node registry on a hand-driven clock."""

from __future__ import annotations

from scheduler_support import telemetry

from continuum.services.scheduler.registry import NodeRegistry
from continuum.services.scheduler.settings import SchedulerSettings


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_liveness_returns_next_transition_time() -> None:
    clock = ManualClock()
    registry = NodeRegistry(SchedulerSettings(suspect_after_intervals=2, lost_after_intervals=3), clock=clock)
    registry.apply_telemetry(telemetry("n1", interval_s=1.0))

    clock.now = 100.5
    assert registry.check_liveness() == 102.0
    assert registry.nodes["n1"].status == "ready"

    clock.now = 102.0
    assert registry.check_liveness() == 103.0
    assert registry.nodes["n1"].status == "suspect"

    clock.now = 103.0
    assert registry.check_liveness() is None
    assert registry.nodes["n1"].status == "lost"


def test_liveness_waits_out_startup_grace() -> None:
    clock = ManualClock()
    registry = NodeRegistry(SchedulerSettings(suspect_after_intervals=2, lost_after_intervals=3), clock=clock)
    registry.apply_telemetry(telemetry("n1", interval_s=1.0))
    registry.observing_since = 102.5

    clock.now = 104.0
    assert registry.check_liveness() == 105.5
    assert registry.nodes["n1"].status == "suspect"

    clock.now = 105.5
    registry.check_liveness()
    assert registry.nodes["n1"].status == "lost"


def test_crash_backoff_doubles_in_crash_loop() -> None:
    from continuum.services.scheduler.model import Binding

    binding = Binding(replica_id="w-0", node_id="n1", epoch=1, generation=1)
    delays = []
    for second in range(4):
        binding.running_since = 1000.0 + second * 10
        delays.append(binding.crash_backoff(1000.0 + second * 10 + 2, initial=1.0, maximum=5.0, reset_after=60.0))

    assert delays == [1.0, 2.0, 4.0, 5.0]
    assert binding.failures == 4


def test_crash_backoff_resets_after_long_run() -> None:
    from continuum.services.scheduler.model import Binding

    binding = Binding(replica_id="w-0", node_id="n1", epoch=1, generation=1, failures=3)
    binding.running_since = 1000.0

    delay = binding.crash_backoff(1000.0 + 61.0, initial=1.0, maximum=300.0, reset_after=60.0)

    assert delay == 1.0
    assert binding.failures == 1
    assert binding.running_since == 0.0
