"""Guardrail policies: which detectors run at which stage, their thresholds, and the action per finding type.

A policy is a YAML or TOML document:

    name: default
    detectors:
      injection: {stages: [input, retrieval], threshold: 0.5}
      pii: {options: {types: [email, phone, card]}}
    actions:
      default: block          # finding types not listed below
      pii: redact             # every type of one detector
      pii.ipv4: allow         # one type: reported, no effect on the verdict

Unknown fields, detectors and options are rejected, so a typo is an error
rather than a silently weaker policy. `parse_policy` validates the document
and builds its detectors; a failure raises PolicyError with the reason.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from continuum.services.guardrails.detectors import REGISTRY, Detector
from continuum.services.guardrails.errors import PolicyError
from continuum.shared.errors import SchemaError
from continuum.shared.schemas import Document, convert
from continuum.shared.schemas.guard import Stage, Verdict
from continuum.shared.subjects import validate_name

ALL_STAGES: tuple[Stage, ...] = ("input", "retrieval", "output")
Action = Verdict


class DetectorSettings(Document, kw_only=True):
    """One detector in a policy: where it runs, the minimum score that counts, and its options."""

    enabled: bool = True
    stages: list[Stage] = msgspec.field(default_factory=lambda: list(ALL_STAGES))
    threshold: float = 0.0
    options: dict[str, Any] = msgspec.field(default_factory=dict)


class PolicyDocument(Document, kw_only=True):
    """A policy as written in YAML or TOML."""

    name: str
    description: str = ""
    detectors: dict[str, DetectorSettings] = msgspec.field(default_factory=dict)
    actions: dict[str, Action] = msgspec.field(default_factory=dict)


@dataclass(frozen=True)
class ActiveDetector:
    detector: Detector
    threshold: float


@dataclass
class Policy:
    """A validated policy with its detectors built, ready for checks."""

    name: str
    description: str
    stages: dict[str, list[ActiveDetector]]
    actions: dict[str, Action]
    source: str
    revision: int = 0
    document: PolicyDocument | None = field(default=None, repr=False)

    def action_for(self, detector: str, finding_type: str) -> Action:
        """Return the action of `detector.type`, else of `detector`, else the policy default (`block`)."""
        actions = self.actions
        return actions.get(f"{detector}.{finding_type}") or actions.get(detector) or actions.get("default", "block")


def load_text(text: str | bytes, *, source: str, name_hint: str | None = None) -> Any:
    """Parse YAML (JSON included) or TOML text into plain data; TOML is tried when YAML yields no mapping."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError(f"policy from {source} is not UTF-8 text: {exc}", policy=name_hint or "?", source=source) from exc
    yaml_error: Exception | None = None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        data, yaml_error = None, exc
    if isinstance(data, dict):
        return data
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        detail = f"YAML: {yaml_error}; TOML: {exc}" if yaml_error else f"not a YAML mapping, and TOML failed: {exc}"
        raise PolicyError(f"policy from {source} cannot be parsed ({detail})", policy=name_hint or "?", source=source) from exc


def parse_policy(text: str | bytes, *, source: str, name_hint: str | None = None, revision: int = 0) -> Policy:
    """Validate a policy document and build its detectors; raise PolicyError with the reason on any problem."""
    data = load_text(text, source=source, name_hint=name_hint)
    if name_hint is not None:
        data.setdefault("name", name_hint)
    return build_policy(data, source=source, name_hint=name_hint, revision=revision)


def build_policy(data: Any, *, source: str, name_hint: str | None = None, revision: int = 0) -> Policy:
    label = name_hint or (data.get("name") if isinstance(data, dict) else None) or "?"
    try:
        document = convert(data, PolicyDocument)
    except SchemaError as exc:
        raise PolicyError(f"invalid policy {label!r} from {source}: {exc}", policy=label, source=source) from exc

    def reject(reason: str) -> PolicyError:
        return PolicyError(f"invalid policy {document.name!r} from {source}: {reason}", policy=document.name, source=source)

    try:
        validate_name(document.name, kind="policy name")
    except ValueError as exc:
        raise reject(str(exc)) from exc
    if name_hint is not None and document.name != name_hint:
        raise reject(f"its name {document.name!r} differs from the key {name_hint!r}; make them equal")

    stages: dict[str, list[ActiveDetector]] = {stage: [] for stage in ALL_STAGES}
    for detector_name, settings in document.detectors.items():
        if detector_name not in REGISTRY:
            raise reject(f"unknown detector {detector_name!r}; choose from {', '.join(sorted(REGISTRY))}")
        if not 0.0 <= settings.threshold <= 1.0:
            raise reject(f"detectors.{detector_name}.threshold is {settings.threshold}; use a score from 0 to 1")
        if not settings.enabled:
            continue
        options_type, constructor = REGISTRY[detector_name]
        try:
            options = convert(settings.options, options_type)
            detector = constructor(options)
        except SchemaError as exc:
            raise reject(f"detectors.{detector_name}.options: {exc}") from exc
        except (ValueError, TypeError) as exc:
            raise reject(f"detectors.{detector_name}.options: {exc}") from exc
        for stage in dict.fromkeys(settings.stages):
            stages[stage].append(ActiveDetector(detector, settings.threshold))

    for key in document.actions:
        detector_name = key.split(".", 1)[0]
        if key != "default" and detector_name not in REGISTRY:
            raise reject(f"actions.{key} names unknown detector {detector_name!r}; choose from {', '.join(sorted(REGISTRY))}")

    return Policy(
        name=document.name,
        description=document.description,
        stages=stages,
        actions=dict(document.actions),
        source=source,
        revision=revision,
        document=document,
    )


def load_policy_file(path: str | Path) -> Policy:
    """Read and validate one policy file (`.yaml`, `.yml`, `.toml` or `.json`)."""
    file = Path(path)
    try:
        text = file.read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {str(file)!r}: {exc}", policy=file.stem, source=str(file)) from exc
    return parse_policy(text, source=str(file))


POLICY_SUFFIXES: tuple[Literal[".yaml", ".yml", ".toml", ".json"], ...] = (".yaml", ".yml", ".toml", ".json")
BUILTIN_DIR = Path(__file__).resolve().parent / "policies"


def load_policy_dir(directory: str | Path) -> list[Policy]:
    """Load every policy file in a folder, in name order; any invalid file raises PolicyError."""
    folder = Path(directory)
    if not folder.is_dir():
        raise PolicyError(f"policy folder {str(folder)!r} not found; fix `policy_dirs`", policy="?", source=str(folder))
    files = sorted(path for path in folder.iterdir() if path.suffix in POLICY_SUFFIXES)
    return [load_policy_file(path) for path in files]
