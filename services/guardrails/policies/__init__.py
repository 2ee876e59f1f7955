"""Built-in guardrail policies, shipped as YAML files beside this module."""
