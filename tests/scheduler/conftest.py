"""Fixtures for the scheduler tests; they live in scheduler_support so tests can import its helpers by a unique name."""

from scheduler_support import *  # noqa: F401,F403 - pytest collects the fixtures from this module's names
