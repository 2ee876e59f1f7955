"""Continuum's shared library: schemas, subjects, topology, bus and runtime helpers."""

__version__ = "0.1.0"
