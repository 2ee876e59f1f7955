"""The WASM runtime: WASI modules run by wasmtime with fuel, memory and time limits.

An invocation instantiates the module in a fresh store, passes the JSON
input on stdin, and reads the JSON result from stdout. The entry point is
`_start` (a WASI command) unless the spec names another export, which is
called the same way. Limits per invocation:

- fuel: `wasm_fuel` units of wasmtime fuel (about one per instruction);
- memory: `wasm_memory_mb` of linear memory;
- time: the workload's `timeout_s`, enforced by epoch interruption with a
  10 ms tick, so a module that loops forever is stopped even with fuel left.

Compiled code is cached beside the artifact (`module.cwasm`), so a replica
that scaled to zero starts again without recompiling.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import tempfile
import threading
from pathlib import Path

import wasmtime

from continuum.services.agent.errors import InvocationFailure, ReplicaStartError

logger = logging.getLogger(__name__)

EPOCH_TICK_S = 0.01


class WasmEngine:
    """One wasmtime engine per agent, with a thread that advances its epoch every tick."""

    def __init__(self) -> None:
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def start(self) -> None:
        if self._ticker is not None:
            return
        self._ticker = threading.Thread(target=self._tick, name="wasm-epoch", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(EPOCH_TICK_S):
            self.engine.increment_epoch()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1.0)
            self._ticker = None


def compile_module(engine: wasmtime.Engine, source: Path) -> wasmtime.Module:
    """Load the compiled module cached beside `source`, compiling and caching it on first use."""
    cached = source.with_name("module.cwasm")
    if cached.exists():
        try:
            return wasmtime.Module.deserialize_file(engine, str(cached))
        except wasmtime.WasmtimeError:
            logger.warning("cached compiled module %s is unusable; compiling again", cached)
    try:
        module = wasmtime.Module.from_file(engine, str(source))
    except wasmtime.WasmtimeError as exc:
        raise ReplicaStartError(f"the artifact is not a valid WASM module: {str(exc).splitlines()[0]}") from exc
    partial = cached.with_suffix(".tmp")
    partial.write_bytes(module.serialize())
    partial.replace(cached)
    return module


class WasmFunction:
    """One replica of a WASM module."""

    def __init__(self, engine: WasmEngine, source: Path, entrypoint: str | None, *, fuel: int, memory_mb: int) -> None:
        self.engine = engine
        self.source = source
        self.entrypoint = entrypoint or "_start"
        self.fuel = fuel
        self.memory_bytes = memory_mb * 1024 * 1024
        self.module: wasmtime.Module | None = None
        self.linker: wasmtime.Linker | None = None

    async def start(self) -> None:
        self.engine.start()
        module = compile_module(self.engine.engine, self.source)
        exported = {export.name for export in module.exports}
        if self.entrypoint not in exported:
            raise ReplicaStartError(
                f"the WASM module exports no function {self.entrypoint!r} (exports: {', '.join(sorted(exported)) or 'none'})"
            )
        linker = wasmtime.Linker(self.engine.engine)
        linker.define_wasi()
        self.module, self.linker = module, linker

    async def stop(self) -> None:
        """Drop the compiled module; a later start loads it again from the on-disk cache."""
        self.module, self.linker = None, None

    async def invoke(self, payload: bytes, timeout: float) -> bytes:
        if self.module is None or self.linker is None:
            raise InvocationFailure("unavailable", "the module is not started")
        return await asyncio.to_thread(self._run, self.module, self.linker, payload, timeout)

    def _run(self, module: wasmtime.Module, linker: wasmtime.Linker, payload: bytes, timeout: float) -> bytes:
        store = wasmtime.Store(self.engine.engine)
        store.set_fuel(self.fuel)
        store.set_limits(memory_size=self.memory_bytes)
        store.set_epoch_deadline(max(1, math.ceil(timeout / EPOCH_TICK_S)))
        output = bytearray()

        def _write_stdout(chunk: bytes) -> int:
            output.extend(chunk)
            return len(chunk)

        with tempfile.NamedTemporaryFile(prefix="ctm-wasm-stdin-") as stdin:
            stdin.write(payload)
            stdin.flush()
            wasi = wasmtime.WasiConfig()
            wasi.stdin_file = stdin.name
            wasi.stdout_custom = _write_stdout
            wasi.inherit_stderr()
            store.set_wasi(wasi)
            try:
                instance = linker.instantiate(store, module)
                instance.exports(store)[self.entrypoint](store)  # type: ignore[operator]
            except wasmtime.ExitTrap as exc:
                if exc.code != 0:
                    raise InvocationFailure("user_error", f"the module exited with code {exc.code}", error_type="ExitTrap") from exc
            except wasmtime.Trap as exc:
                raise _trap_failure(exc, timeout, self.fuel) from exc
            except wasmtime.WasmtimeError as exc:
                raise InvocationFailure("user_error", f"the module failed: {str(exc).splitlines()[0]}", error_type="WasmtimeError") from exc

        return _as_json(bytes(output))


def _trap_failure(trap: wasmtime.Trap, timeout: float, fuel: int) -> InvocationFailure:
    code = trap.trap_code
    if code == wasmtime.TrapCode.INTERRUPT:
        return InvocationFailure("timeout", f"the module did not return within {timeout:g}s", error_type="Trap")
    if code == wasmtime.TrapCode.OUT_OF_FUEL:
        return InvocationFailure("timeout", f"the module used all of its {fuel} units of fuel", error_type="Trap")
    return InvocationFailure("user_error", f"the module trapped: {trap.message.splitlines()[0]}", error_type="Trap")


def _as_json(output: bytes) -> bytes:
    """Return stdout as the JSON result; output that is not JSON becomes a JSON string."""
    text = output.strip()
    if not text:
        return b"null"
    try:
        json.loads(text)
    except ValueError:
        return json.dumps(output.decode("utf-8", errors="replace")).encode()
    return text
