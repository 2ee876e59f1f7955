"""Fixtures for the bridge tests; they live in bridge_support so tests can import its helpers by a unique name."""

from bridge_support import *  # noqa: F401,F403 - pytest collects the fixtures from this module's names
