"""The edge agent: telemetry, placements, and the function and WASM runtimes of one node."""
