"""The API reference at ``/docs``: the service's OpenAPI schema as one HTML page, rendered on the server.

It needs no network and runs no script, so it reads the same on a machine without internet, where FastAPI's
Swagger UI (kept at ``/swagger``) cannot load its scripts from their CDN. Each route shows its summary, its
description, its parameters and request body fields (type, default, constraints, description) and its answers; the
models the routes name follow, each field with its type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Any

from clip_core.serve.apierrors import MALFORMED

__all__ = ["answer_errors_as_served", "render_api_docs"]

_ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorResponse"}

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1000px; padding: 1rem 1.5rem; color: #222; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin: 2rem 0 .5rem; }
h3 { font-size: 1.05rem; margin: 1.4rem 0 .3rem; } code { font-size: .92em; }
.method { display: inline-block; min-width: 3.2rem; font-weight: 700; color: #fff; background: #49c; padding: 0 .4rem;
  border-radius: 3px; text-align: center; margin-right: .4rem; } .post { background: #4a5; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0; font-size: .92rem; }
th, td { text-align: left; vertical-align: top; border-bottom: 1px solid #e4e4e4; padding: .3rem .5rem; }
th { color: #555; font-weight: 600; } .muted { color: #666; }
"""


def render_api_docs(schema: Mapping[str, Any]) -> str:
    """The HTML page of an OpenAPI 3 ``schema`` (what ``FastAPI.openapi()`` returns)."""
    info = schema.get("info", {})
    title, version = escape(info.get("title", "API")), escape(str(info.get("version", "")))
    components = schema.get("components", {}).get("schemas", {})
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title} · API</title><style>{_STYLE}</style></head><body>",
        f"<h1>{title} <span class='muted'>{version}</span></h1>",
        f"<p>{escape(info.get('description', ''))}</p>",
        '<p class="muted">The OpenAPI schema: <a href="/openapi.json">/openapi.json</a> · interactive (loads '
        'Swagger UI from its CDN): <a href="/swagger">/swagger</a> · the search page: <a href="/">/</a></p>',
        "<h2>Routes</h2>",
    ]
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            parts += _operation(path, method, operation, components)
    if components:
        parts.append("<h2>Models</h2>")
        for name, model in components.items():
            parts.append(f'<h3 id="{escape(name)}">{escape(name)}</h3>')
            if model.get("description"):
                parts.append(f"<p>{_prose(model['description'])}</p>")
            parts += _fields(model)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def answer_errors_as_served(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with FastAPI's 422 answers (``HTTPValidationError``) replaced by the 400 in OpenAI's error shape
    that the service gives for invalid requests (:mod:`clip_core.serve.apierrors`); changed in place, returned."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None:
                responses.setdefault(
                    "400",
                    {
                        "description": MALFORMED,
                        "content": {"application/json": {"schema": _ERROR_SCHEMA}},
                    },
                )
    models = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        models.pop(name, None)
    return schema


def _operation(path: str, method: str, operation: Mapping[str, Any], components: Mapping[str, Any]) -> list[str]:
    anchor = escape(f"{method}-{path}")
    parts = [
        f'<h3 id="{anchor}"><span class="method {escape(method)}">{escape(method.upper())}</span>'
        f"<code>{escape(path)}</code> <span class='muted'>{escape(operation.get('summary', ''))}</span></h3>"
    ]
    if operation.get("description"):
        parts += [f"<p>{_prose(line)}</p>" for line in operation["description"].split("\n\n")]
    parameters = operation.get("parameters", [])
    if parameters:
        parts.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th>about</th></tr>")
        for parameter in parameters:
            about = _about(parameter.get("schema", {}), parameter.get("description"))
            required = " (required)" if parameter.get("required") else ""
            parts.append(
                f"<tr><td><code>{escape(parameter['name'])}</code>{required}</td><td>{escape(parameter.get('in', ''))}"
                f"</td><td>{_type(parameter.get('schema', {}))}</td><td>{about}</td></tr>"
            )
        parts.append("</table>")
    body = operation.get("requestBody", {}).get("content", {})
    for media, content in body.items():
        parts.append(f"<p>Request body, <code>{escape(media)}</code>: {_type(content.get('schema', {}))}</p>")
        reference = content.get("schema", {}).get("$ref")
        if reference is not None and reference.rsplit("/", 1)[-1] in components:
            parts += _fields(components[reference.rsplit("/", 1)[-1]])
    answers = []
    for status, response in sorted(operation.get("responses", {}).items()):
        kinds = response.get("content", {})
        shapes = ", ".join(
            f"{_type(c.get('schema', {}))} <span class='muted'>{escape(m)}</span>" for m, c in kinds.items()
        )
        answers.append(
            f"<tr><td><code>{escape(status)}</code></td><td>{escape(response.get('description', ''))}</td>"
            f"<td>{shapes}</td></tr>"
        )
    if answers:
        parts += ["<table><tr><th>answer</th><th>when</th><th>body</th></tr>", *answers, "</table>"]
    return parts


def _fields(model: Mapping[str, Any]) -> list[str]:
    properties = model.get("properties", {})
    if not properties:
        return []
    required = set(model.get("required", ()))
    rows = ["<table><tr><th>field</th><th>type</th><th>about</th></tr>"]
    for name, field in properties.items():
        mark = " (required)" if name in required else ""
        rows.append(
            f"<tr><td><code>{escape(name)}</code>{mark}</td><td>{_type(field)}</td>"
            f"<td>{_about(field, field.get('description'))}</td></tr>"
        )
    rows.append("</table>")
    return rows


def _type(schema: Mapping[str, Any]) -> str:
    """A JSON schema's type as short HTML: ``string | array of string``, models linked to their section."""
    if "$ref" in schema:
        name = escape(str(schema["$ref"]).rsplit("/", 1)[-1])
        return f'<a href="#{name}">{name}</a>'
    if "anyOf" in schema or "oneOf" in schema:
        return " | ".join(_type(option) for option in schema.get("anyOf", schema.get("oneOf", [])))
    if "const" in schema:
        return f"<code>{escape(json.dumps(schema['const']))}</code>"
    if "enum" in schema:
        return " | ".join(f"<code>{escape(json.dumps(value))}</code>" for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if isinstance(kind, list):
        return " | ".join(escape(str(k)) for k in kind)
    return escape(str(kind)) + (f" ({escape(schema['format'])})" if "format" in schema else "")


def _prose(text: str) -> str:
    """Escaped text, with ````code```` (as the docstrings write it) set as code."""
    pieces = escape(text).split("``")
    return "".join(f"<code>{piece}</code>" if index % 2 else piece for index, piece in enumerate(pieces))


def _number(value: object) -> str:
    return escape(str(int(value) if isinstance(value, float) and value.is_integer() else value))


_LIMITS = {
    "minimum": "≥",
    "maximum": "≤",
    "exclusiveMinimum": ">",
    "exclusiveMaximum": "<",
    "minLength": "length ≥",
    "maxLength": "length ≤",
    "minItems": "items ≥",
    "maxItems": "items ≤",
}


def _about(schema: Mapping[str, Any], description: str | None) -> str:
    """A field's description, default and constraints."""
    notes = [_prose(description)] if description else []
    if "default" in schema:
        notes.append(f"default <code>{escape(json.dumps(schema['default']))}</code>")
    options = schema.get("anyOf", [schema])
    for option in options:
        for key, sign in _LIMITS.items():
            if key in option:
                notes.append(f"{escape(sign)} {_number(option[key])}")
    return "; ".join(notes)
