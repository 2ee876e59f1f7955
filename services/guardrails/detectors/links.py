"""Links in model output whose domain is not on the allowlist.

A domain on the list allows itself and its subdomains (`python.org` allows
`docs.python.org`, never `evilpython.org`). Links are `http(s)://` and
`www.` URLs, and Markdown images, which a renderer fetches without a click.
"""

from __future__ import annotations

import re
from typing import ClassVar
from urllib.parse import urlsplit

from continuum.services.guardrails.detectors.base import DetectorOptions
from continuum.shared.schemas.guard import Finding

# `]` and `)` end a URL so Markdown links parse, except around a bracketed host:
# an IPv6 literal, or a placeholder such as `[IPV4]` left by an earlier redaction.
_URL = re.compile(r"(?i)\b(?:https?://(?:\[[0-9a-z:.%_]+\][^\s<>\"'`)\]]*|[^\s<>\"'`)\]]+)|www\.[^\s<>\"'`)\]]+)")


class LinksOptions(DetectorOptions, kw_only=True, forbid_unknown_fields=True):
    """`allow_domains`: domains whose links pass, each with its subdomains; empty reports every link."""

    allow_domains: list[str] = []


class LinksDetector:
    """Reports links to domains outside the allowlist; redaction writes `[LINK]`."""

    name: ClassVar[str] = "links"

    def __init__(self, options: LinksOptions | None = None) -> None:
        self.options = options or LinksOptions()
        self._allowed = tuple(domain.lower().strip(".") for domain in self.options.allow_domains)

    def scan(self, text: str) -> list[Finding]:
        if "http" not in text.lower() and "www." not in text.lower():
            return []
        findings = []
        for match in _URL.finditer(text):
            url = match.group().rstrip(".,;:!?")
            host = self._host(url)
            if host is not None and self._allowed_host(host):
                continue
            findings.append(
                Finding(
                    detector=self.name,
                    type="link",
                    start=match.start(),
                    end=match.start() + len(url),
                    reason=f"link to {host or 'an unparsable host'!s}, not on the domain allowlist",
                )
            )
        return findings

    def placeholder(self, finding: Finding) -> str:
        return "[LINK]"

    def _host(self, url: str) -> str | None:
        candidate = url if "://" in url else f"http://{url}"
        try:
            host = urlsplit(candidate).hostname
        except ValueError:
            return None
        return host.rstrip(".") if host else None

    def _allowed_host(self, host: str) -> bool:
        return any(host == domain or host.endswith(f".{domain}") for domain in self._allowed)
