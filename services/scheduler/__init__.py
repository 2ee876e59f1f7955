"""The Continuum scheduler: node registry, placement, reconcile loop, leader lease and management API."""
