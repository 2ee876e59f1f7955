"""Detectors behind one Protocol, and the registry that policies name them by.

    name        module       finds
    pii         pii          email, phone, card, iban, ssn, ipv4, ipv6
    secrets     secrets      cloud keys, GitHub/Slack tokens, private keys, JWTs, high-entropy assignments
    injection   injection    prompt injection and jailbreak attempts, also inside encoded payloads
    denylist    denylist     denylisted terms and topics
    length      length       text beyond the maximum length
    invisible   invisible    zero-width, bidirectional, tag and control characters
    links       links        links to domains outside an allowlist
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from continuum.services.guardrails.detectors.base import Detector, DetectorOptions
from continuum.services.guardrails.detectors.denylist import DenylistDetector, DenylistOptions
from continuum.services.guardrails.detectors.injection import InjectionDetector, InjectionOptions
from continuum.services.guardrails.detectors.invisible import InvisibleDetector, InvisibleOptions
from continuum.services.guardrails.detectors.length import LengthDetector, LengthOptions
from continuum.services.guardrails.detectors.links import LinksDetector, LinksOptions
from continuum.services.guardrails.detectors.pii import PiiDetector, PiiOptions
from continuum.services.guardrails.detectors.secrets import SecretsDetector, SecretsOptions

# name -> (options Struct, constructor taking the options)
REGISTRY: dict[str, tuple[type[DetectorOptions], Callable[[Any], Detector]]] = {
    "pii": (PiiOptions, PiiDetector),
    "secrets": (SecretsOptions, SecretsDetector),
    "injection": (InjectionOptions, InjectionDetector),
    "denylist": (DenylistOptions, DenylistDetector),
    "length": (LengthOptions, LengthDetector),
    "invisible": (InvisibleOptions, InvisibleDetector),
    "links": (LinksOptions, LinksDetector),
}

__all__ = [
    "REGISTRY",
    "Detector",
    "DenylistDetector",
    "InjectionDetector",
    "InvisibleDetector",
    "LengthDetector",
    "LinksDetector",
    "PiiDetector",
    "SecretsDetector",
]
