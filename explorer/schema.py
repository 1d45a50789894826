"""JSON from outside (a bundle's config, an uploaded report) parsed and checked against a schema.

The schemas are JSON Schema (draft 2020-12, checked by ``jsonschema``) with two additions:
``"finite": true`` refuses NaN and infinities in a number, and ``"x-message"`` gives the
sentence a user reads when that part of the schema is violated (``{value}`` is replaced by
the offending value). Every failure is one ``ExplorerError`` line, never a raw ValueError,
RecursionError or a traceback from deep inside the code that would have used the data.
"""
from __future__ import annotations

import json
import math

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from explorer.errors import ExplorerError

MAX_DEPTH = 64  # far deeper than anything we write; deep nesting only comes from hostile files


def _finite(validator, wanted, instance, schema):
    if wanted and isinstance(instance, float) and not math.isfinite(instance):
        yield ValidationError(f"{instance} is not a finite number")


Validator = validators.extend(Draft202012Validator, {"finite": _finite})


def parse_json(blob: bytes | str, what: str, fix: str = "") -> object:
    """``blob`` as JSON, or an ExplorerError naming ``what`` (e.g. "config.json in the bundle")."""
    try:
        text = blob.decode("utf-8") if isinstance(blob, (bytes, bytearray)) else blob
        data = json.loads(text)
    except RecursionError:
        raise ExplorerError(f"{what} is nested more than {MAX_DEPTH} levels deep, so it was not written by the "
                            f"explorer.{' ' + fix if fix else ''}") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise ExplorerError(f"{what} is not valid JSON ({_short(str(e))}).{' ' + fix if fix else ''}") from None
    if _depth(data) > MAX_DEPTH:
        raise ExplorerError(f"{what} is nested more than {MAX_DEPTH} levels deep, so it was not written by the "
                            f"explorer.{' ' + fix if fix else ''}")
    return data


def check_schema(data: object, schema: dict, what: str, fix: str = "", lead: str = "") -> object:
    """``data`` when it follows ``schema``; otherwise one sentence naming the place and the rule.

    The sentence starts with ``lead`` (default: "<what> does not match its schema").
    """
    # The deepest error names the field a user must fix.
    error = best_match(Validator(schema).iter_errors(data), key=lambda e: len(e.absolute_path))
    if error is None:
        return data
    lead = lead or f"{what} does not match its schema"
    raise ExplorerError(f"{lead}: {_message(error, schema, data)}.{' ' + fix if fix else ''}")


def _message(error: ValidationError, schema: dict, data) -> str:
    """The x-message of the innermost schema part holding the failed rule, with its value filled in."""
    node, tokens, i, steps = schema, list(error.absolute_schema_path), 0, 0
    found = (None, 0)
    while True:
        if isinstance(node, dict) and "x-message" in node:
            found = (node["x-message"], steps)
        if i >= len(tokens) or not isinstance(node, dict):
            break
        token = tokens[i]
        if token in ("properties", "prefixItems") and i + 1 < len(tokens):
            node, i, steps = node[token][tokens[i + 1]], i + 2, steps + 1
        elif token in ("additionalProperties", "items"):
            node, i, steps = node[token], i + 1, steps + 1
        else:
            break  # a rule (type, minimum, ...): the node above holds it
    message, steps = found
    # A message far above the failure (the whole document's) says less than the rule itself.
    if message is None or steps < len(error.absolute_path) - 1:
        where = ".".join(str(p) for p in error.absolute_path)
        return f"{'at ' + repr(where) + ': ' if where else ''}{_short(error.message)}"
    value = data
    for key in list(error.absolute_path)[:steps]:
        value = value[key]
    message = message.replace("{value}", _short(repr(value)))
    if steps < len(error.absolute_path):  # the rule sits inside the part the message speaks of: name it
        where = ".".join(str(p) for p in error.absolute_path)
        message += f" (at {where!r}: {_short(error.message, 80)})"
    return message


def _depth(data) -> int:
    """Nesting depth, counted without recursion (a hostile file may be deep)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                return depth
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
