"""Fixtures for the deploy tests; they live in deploy_support so tests can import its helpers by a unique name."""

from deploy_support import *  # noqa: F401,F403 - pytest collects the fixtures from this module's names
