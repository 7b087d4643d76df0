"""Checking a tool's arguments against its input schema (JSON Schema 2020-12, strictly).

Arguments that do not fit raise ArgumentError, whose message names every problem in words
without quoting long values; the server answers it with an MCP error, not a tool error.
"""

from __future__ import annotations

from typing import Any

import jsonschema

from codeweir.protocol import json_kind


class ArgumentError(ValueError):
    """Tool arguments that do not fit the tool's input schema; the message names each problem."""


def validator_for(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _problem(error: jsonschema.ValidationError, schema: dict[str, Any]) -> str:
    """One schema violation in words, never quoting a value longer than a few characters."""
    where = ".".join(str(p) for p in error.absolute_path) or "arguments"
    value, rule = error.instance, error.validator_value
    if error.validator == "required":
        missing = [name for name in rule if isinstance(value, dict) and name not in value]
        return f"{', '.join(missing)}: required"
    if error.validator == "additionalProperties":
        extra = sorted(k for k in value if k not in schema.get("properties", {}))
        shown = ", ".join(k if len(k) <= 40 else k[:39] + "…" for k in extra[:5])
        return f"unknown argument(s) {shown} (arguments: {', '.join(schema.get('properties', {}))})"
    if error.validator == "type":
        expected = rule if isinstance(rule, str) else " or ".join(rule)
        return f"{where}: expected {expected}, got {json_kind(value)}"
    if error.validator == "maxLength":
        return f"{where}: at most {rule} characters, got {len(value)}"
    if error.validator == "minLength":
        return f"{where}: must not be empty"
    if error.validator in ("minimum", "maximum"):
        low, high = error.schema.get("minimum"), error.schema.get("maximum")
        shown = repr(value) if len(repr(value)) <= 24 else "a larger number"
        return f"{where}: must be between {low} and {high}, got {shown}"
    if error.validator == "enum":
        return f"{where}: must be one of {', '.join(rule)}"
    if error.validator == "pattern":
        return f"{where}: {error.schema.get('description', 'does not have the expected form')}"
    if error.validator == "maxItems":
        return f"{where}: at most {rule} items"
    return f"{where}: not valid ({error.validator})"


def checked_arguments(
    tool: str, input_schema: dict[str, Any], validator: jsonschema.protocols.Validator, arguments: dict[str, Any] | None
) -> dict[str, Any]:
    """`arguments` with the schema's defaults filled in; ArgumentError naming every problem."""
    arguments = {} if arguments is None else arguments
    errors = sorted(validator.iter_errors(arguments), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        problems = "; ".join(dict.fromkeys(_problem(e, input_schema) for e in errors[:8]))
        raise ArgumentError(f"invalid arguments for {tool}: {problems}")
    out = dict(arguments)
    for name, schema in input_schema["properties"].items():
        if name not in out and "default" in schema:
            out[name] = schema["default"]
    return out
