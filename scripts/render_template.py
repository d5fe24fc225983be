#!/usr/bin/env python3
"""Renders an OpenShift Template's objects with parameters substituted, like `oc process`.

For machines without `oc` (CI, a plain Kubernetes cluster with `kubectl apply`):

    scripts/render_template.py openshift/notify-inbound-template.yaml \
        -p INBOUND_SMTP_DOMAIN=smtp.example.org -p NOTIFYBC_URL=http://nbc-notify-bc:80 \
        -p IMAGE=registry.example.org/notify-inbound:1.0 [-o yaml] > objects.json

Follows `oc process`: `${NAME}` is replaced inside any string value, a whole `${{NAME}}`
value is replaced by the parameter parsed as JSON (so numbers stay numbers), a parameter
without a value falls back to its `value`, a required parameter left empty and an unknown
`-p` name are errors. `generate: expression` parameters are not supported (refused).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

import yaml

REF = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
WHOLE_JSON_REF = re.compile(r"^\$\{\{([A-Za-z0-9_]+)\}\}$")


class RenderError(Exception):
    pass


def load_template(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        template = yaml.safe_load(f)
    if not isinstance(template, dict) or template.get("kind") != "Template":
        raise RenderError(f"{path}: not an OpenShift Template (kind: Template)")
    return template


def resolve_parameters(template: dict, given: dict[str, str]) -> dict[str, str]:
    declared = {p["name"]: p for p in template.get("parameters", [])}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise RenderError(f"unknown parameter(s): {', '.join(unknown)}")
    values: dict[str, str] = {}
    for name, p in declared.items():
        if "generate" in p:
            raise RenderError(f"parameter {name}: 'generate' is not supported by this renderer")
        value = given.get(name, p.get("value", ""))
        value = "" if value is None else str(value)
        if p.get("required") and value == "":
            raise RenderError(f"parameter {name} is required: pass -p {name}=...")
        values[name] = value
    return values


def substitute(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: substitute(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute(v, values) for v in node]
    if isinstance(node, str):
        whole = WHOLE_JSON_REF.match(node)
        if whole and whole.group(1) in values:
            raw = values[whole.group(1)]
            try:
                return json.loads(raw)
            except ValueError:
                return raw
        return REF.sub(lambda m: values.get(m.group(1), m.group(0)), node)
    return node


def render(template: dict, given: dict[str, str]) -> list[dict]:
    values = resolve_parameters(template, given)
    return [substitute(obj, values) for obj in template.get("objects", [])]


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings (config.local.toml, PEM) as readable `|` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _str)


def parse_params(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise RenderError(f"-p {pair!r}: expected NAME=VALUE")
        name, value = pair.split("=", 1)
        out[name] = value
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("template")
    ap.add_argument("-p", "--param", action="append", default=[], help="NAME=VALUE")
    ap.add_argument("-o", "--output", choices=["json", "yaml"], default="json")
    args = ap.parse_args(argv)
    try:
        objects = render(load_template(args.template), parse_params(args.param))
    except (RenderError, OSError, yaml.YAMLError) as e:
        print(f"render_template: {e}", file=sys.stderr)
        return 1
    doc = {"apiVersion": "v1", "kind": "List", "items": objects}
    if args.output == "yaml":
        yaml.dump(doc, sys.stdout, Dumper=_LiteralDumper, sort_keys=False)
    else:
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
