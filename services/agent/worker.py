"""The worker process that runs one Python function, separate from the agent.

Run as `python worker.py ARTIFACT_DIR MODULE FUNCTION`. It uses only the
standard library so that it starts fast. Frames on stdin and stdout:

    request:   "<id> <length>\n" followed by <length> bytes of JSON input
    response:  "<id> ok <length>\n" + the JSON result, or
               "<id> err <length>\n" + {"code", "error_type", "message"}
    readiness: "0 ready 0\n" after the import, or "0 fail <length>\n" + error

The protocol keeps a private copy of the original stdout; file descriptor 1
is pointed at stderr so that `print()` in user code cannot corrupt a frame.
The worker exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import sys
import traceback
from typing import Any, BinaryIO


def _write_frame(out: BinaryIO, request_id: str, status: str, body: bytes) -> None:
    out.write(f"{request_id} {status} {len(body)}\n".encode() + body)
    out.flush()


def _error_body(code: str, error_type: str, message: str) -> bytes:
    return json.dumps({"code": code, "error_type": error_type, "message": message}).encode()


def _load(artifact_dir: str, module_name: str, function_name: str) -> Any:
    sys.path.insert(0, artifact_dir)
    module = importlib.import_module(module_name)
    function = getattr(module, function_name, None)
    if function is None:
        raise AttributeError(f"module {module_name!r} has no attribute {function_name!r}")
    if not callable(function):
        raise TypeError(f"{module_name}:{function_name} is a {type(function).__name__}, not a function")
    return function


def _invoke(function: Any, loop: asyncio.AbstractEventLoop, body: bytes) -> tuple[str, bytes]:
    try:
        event = json.loads(body) if body.strip() else None
    except ValueError as exc:
        return "err", _error_body("bad_request", "JSONDecodeError", f"the input is not valid JSON: {exc}")

    try:
        result = function(event)
        if inspect.isawaitable(result):
            result = loop.run_until_complete(result)
    except Exception as exc:  # noqa: BLE001 - every user error becomes a structured reply
        traceback.print_exc(file=sys.stderr)
        return "err", _error_body("user_error", type(exc).__name__, str(exc))

    try:
        return "ok", json.dumps(result, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        return "err", _error_body("user_error", type(exc).__name__, f"the result is not JSON-serialisable: {exc}")


def main(argv: list[str]) -> int:
    artifact_dir, module_name, function_name = argv
    protocol_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    protocol_in = sys.stdin.buffer
    sys.stdin = open(os.devnull)  # noqa: SIM115 - user code must not read the protocol

    try:
        function = _load(artifact_dir, module_name, function_name)
    except Exception as exc:  # noqa: BLE001 - reported to the agent as a failed start
        traceback.print_exc(file=sys.stderr)
        _write_frame(protocol_out, "0", "fail", _error_body("start_failed", type(exc).__name__, str(exc)))
        return 1
    _write_frame(protocol_out, "0", "ready", b"")

    loop = asyncio.new_event_loop()
    while True:
        header = protocol_in.readline()
        if not header:
            return 0
        request_id, length = header.split()
        body = protocol_in.read(int(length))
        status, reply = _invoke(function, loop, body)
        _write_frame(protocol_out, request_id.decode(), status, reply)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
