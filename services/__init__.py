"""Continuum's services, one package each; a service imports only `continuum.shared`."""
