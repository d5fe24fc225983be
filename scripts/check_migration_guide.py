#!/usr/bin/env python3
"""Follows the migration guide of docs/deployment.md ("Beside NotifyBC's Helm release") step by
step (run by scripts/check-migration-guide.sh).

The blocks marked `<!-- migration-test: NAME -->` are taken out of the guide as written and
rendered with `helm template`: NotifyBC's chart (NOTIFYBC_CHART, with
platform-specific/openshift.yaml) with the guide's values.local.yaml, beside
helm/notify-inbound with the guide's values, the Route API on, for NotifyBC release names
`nbc` (the guide's) and `notify-bc` (one that contains the chart name). Checks:

- no Route host is claimed twice, and the guide's "before" values do clash with ours (so the
  check can fail);
- our internal_http_host is a Service of NotifyBC's rendering on that port, rest_api_root /api;
- NotifyBC's rendered config.local.js has inboundSmtpServer.enabled false and our domain;
- the step-2 TOML is exactly the chart's extraConfig, and `notify-inbound check-config` on our
  rendered ConfigMap holds the values of the guide's config.local.js;
- with the step-5 blocks, our Redis URL is a Service of NotifyBC's rendering and the password
  Secret and key exist there (and without NotifyBC's Redis block the Service does not).

Needs HELM, NOTIFYBC_CHART and NOTIFY_INBOUND_BIN. Prints `N passed, M failed` last.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import tomllib
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDE = os.path.join(ROOT, "docs", "deployment.md")
CHART = os.path.join(ROOT, "helm", "notify-inbound")
ROUTE_API = "route.openshift.io/v1/Route"
NAMESPACE = "notify"
BLOCK = re.compile(r"<!-- migration-test: ([a-z0-9-]+) -->\s*\n```[a-z]*\n(.*?)\n```", re.S)
NEEDED = ["notifybc-values-before", "notifybc-values", "extra-config", "notify-inbound-values",
          "notifybc-redis-values", "notify-inbound-coordination-values"]

passed = 0
failed = 0


def check(ok: bool, what: str, detail: str = "") -> bool:
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {what}")
    else:
        failed += 1
        print(f"FAIL  {what}" + (f": {detail}" if detail else ""))
    return ok


def helm_template(release: str, chart: str, value_files: list[str],
                  sets: list[str] = ()) -> list[dict]:
    args = [os.environ["HELM"], "template", release, chart, "--namespace", NAMESPACE,
            "--api-versions", ROUTE_API]
    for f in value_files:
        args += ["-f", f]
    for s in sets:
        args += ["--set", s]
    print("run   " + " ".join(args))
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"helm template {release} failed: {r.stderr.strip()[-600:]}")
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o.get("kind") == kind]


def route_hosts(*renders: list[dict]) -> list[str]:
    return [o["spec"].get("host") or "" for objects in renders for o in of_kind(objects, "Route")]


def service_ports(objects: list[dict]) -> dict[str, set[int]]:
    return {s["metadata"]["name"]: {p["port"] for p in s["spec"].get("ports", [])}
            for s in of_kind(objects, "Service")}


def js_string(js: str, key: str) -> str | None:
    """The JavaScript single-quoted string value of `key: '...'`, unescaped."""
    m = re.search(key + r"\s*:\s*'((?:[^'\\]|\\.)*)'", js)
    return re.sub(r"\\(.)", r"\1", m.group(1)) if m else None


def js_number(js: str, key: str) -> int | None:
    m = re.search(key + r"\s*:\s*(\d+)", js)
    return int(m.group(1)) if m else None


def effective_config(objects: list[dict], tmp: str) -> dict | None:
    """`notify-inbound check-config` on our rendered ConfigMap (certificate paths pointed at a
    throw-away pair): the effective configuration it prints."""
    binary = os.environ["NOTIFY_INBOUND_BIN"]
    text = of_kind(objects, "ConfigMap")[0]["data"]["config.local.toml"]
    gen = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                          "1", "-subj", "/CN=guide", "-keyout", f"{tmp}/tls.key",
                          "-out", f"{tmp}/tls.crt"], capture_output=True, text=True)
    if not check(gen.returncode == 0, "openssl makes a test certificate", gen.stderr):
        return None
    path = f"{tmp}/config.local.toml"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace("/etc/notify-inbound/tls/", f"{tmp}/"))
    run = subprocess.run([binary, "check-config", "--config", path], capture_output=True,
                         text=True)
    if not check(run.returncode == 0, "notify-inbound check-config accepts our ConfigMap",
                 run.stderr.strip()[-500:]):
        return None
    return tomllib.loads(run.stdout.split("\n", 1)[1])


def follow(blocks: dict[str, str], nbc_chart: str, nbc_release: str, tmp: str) -> None:
    print(f"--- NotifyBC release {nbc_release!r}")
    files = {}
    for name, text in blocks.items():
        files[name] = os.path.join(tmp, f"{name}.yaml")
        with open(files[name], "w", encoding="utf-8") as f:
            f.write(text + "\n")
    openshift = os.path.join(nbc_chart, "platform-specific", "openshift.yaml")
    ours_values = yaml.safe_load(blocks["notify-inbound-values"])
    release_set = [f"notifyBC.release={nbc_release}"]

    nbc = helm_template(nbc_release, nbc_chart, [openshift, files["notifybc-values"]])
    ours = helm_template("notify-inbound", CHART, [files["notify-inbound-values"]], release_set)

    # Step 1: one claim per Route host.
    hosts = [h for h in route_hosts(nbc, ours) if h]
    dupes = sorted({h for h in hosts if hosts.count(h) > 1})
    check(not dupes, "no Route host is claimed twice (no HostAlreadyClaimed)", str(dupes))
    our_routes = of_kind(ours, "Route")
    check(len(our_routes) == 1
          and our_routes[0]["spec"]["host"] == ours_values["route"]["host"],
          "our Route claims route.host", str([r["spec"].get("host") for r in our_routes]))
    before = helm_template(nbc_release, nbc_chart, [openshift, files["notifybc-values-before"]])
    hosts = [h for h in route_hosts(before, ours) if h]
    check(ours_values["route"]["host"] in {h for h in hosts if hosts.count(h) > 1},
          "control: the \"before\" values claim the same host (the check above can fail)")

    # Step 1: NotifyBC's server off, its domain kept and equal to ours.
    js = of_kind(nbc, "ConfigMap")
    js = next((c["data"]["config.local.js"] for c in js if "config.local.js" in c["data"]), "")
    inbound = re.search(r"inboundSmtpServer\s*:\s*\{(.*?)\}", js, re.S)
    inbound = inbound.group(1) if inbound else ""
    check(re.search(r"enabled\s*:\s*false", inbound) is not None,
          "NotifyBC's config.local.js: inboundSmtpServer.enabled false")
    check(js_string(inbound, "domain") == ours_values["inboundSmtpServer"]["domain"],
          "NotifyBC's config.local.js keeps the domain, the same as ours",
          f"{js_string(inbound, 'domain')!r}")

    # Step 3: our API URL is NotifyBC's Service and port.
    conf = tomllib.loads(of_kind(ours, "ConfigMap")[0]["data"]["config.local.toml"])
    url = urlsplit(conf["internal_http_host"])
    ports = service_ports(nbc)
    check(url.hostname in ports and url.port in ports[url.hostname],
          f"internal_http_host {conf['internal_http_host']} is a Service and port of NotifyBC's "
          f"rendering", str(ports))
    web = [s for s in of_kind(nbc, "Service") if s["metadata"]["name"] == url.hostname]
    check(bool(web) and any(p.get("targetPort") == "web" for p in web[0]["spec"]["ports"]),
          "that Service port leads to NotifyBC's web (API) container port")
    check(conf.get("rest_api_root") == "/api", "rest_api_root is /api")

    # Step 2: the converted settings.
    check(blocks["extra-config"].strip() == (ours_values.get("extraConfig") or "").strip(),
          "step 2's TOML is exactly the chart's extraConfig in step 3")
    eff = effective_config(ours, tmp)
    if eff is not None:
        before_js = of_kind(before, "ConfigMap")
        before_js = next((c["data"]["config.local.js"] for c in before_js
                          if "config.local.js" in c["data"]), "")
        bounce = eff.get("bounce", {})
        for key, ours_key in (("subjectRegex", "subject_regex"),
                              ("smtpStatusCodeRegex", "smtp_status_code_regex")):
            check(js_string(before_js, key) is not None
                  and bounce.get(ours_key) == js_string(before_js, key),
                  f"bounce.{ours_key} is NotifyBC's {key}",
                  f"{bounce.get(ours_key)!r} vs {js_string(before_js, key)!r}")
        check(bounce.get("unsub_threshold") == js_number(before_js, "unsubThreshold"),
              "bounce.unsub_threshold is NotifyBC's unsubThreshold")
        lu = re.search(r"listUnsubscribeByEmail\s*:\s*\{\s*enabled\s*:\s*(true|false)",
                       before_js)
        check(lu is not None and eff.get("list_unsubscribe_by_email", {}).get("enabled")
              == (lu.group(1) == "true"),
              "list_unsubscribe_by_email.enabled is NotifyBC's")
        check(eff.get("inbound_smtp_server", {}).get("domain")
              == js_string(before_js, "domain"),
              "inbound_smtp_server.domain is NotifyBC's domain")

    # Step 5: the Redis of NotifyBC's release.
    nbc_redis = helm_template(nbc_release, nbc_chart, [openshift, files["notifybc-values"],
                                                       files["notifybc-redis-values"]])
    ours_coord = helm_template("notify-inbound", CHART,
                               [files["notify-inbound-values"],
                                files["notify-inbound-coordination-values"]], release_set)
    conf = tomllib.loads(of_kind(ours_coord, "ConfigMap")[0]["data"]["config.local.toml"])
    redis = urlsplit(conf.get("coordination", {}).get("redis_url", ""))
    ports = service_ports(nbc_redis)
    check(redis.hostname in ports and (redis.port or 6379) in ports[redis.hostname],
          f"coordination.redis_url {redis.geturl()} is a Service and port of NotifyBC's "
          f"rendering", str(sorted(ports)))
    check(redis.hostname not in service_ports(nbc),
          "control: without NotifyBC's step-5 Redis block there is no such Service")
    ctr = of_kind(ours_coord, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in ctr.get("env", [])}
    ref = env.get("NOTIFY_INBOUND__COORDINATION__REDIS_PASSWORD", {}) \
        .get("valueFrom", {}).get("secretKeyRef", {})
    secrets = {s["metadata"]["name"]: s for s in of_kind(nbc_redis, "Secret")}
    check(ref.get("name") in secrets
          and ref.get("key") in (secrets[ref["name"]].get("data") or {}),
          f"the Redis password Secret {ref.get('name')}/{ref.get('key')} is NotifyBC's",
          str(sorted(secrets)))


def main() -> int:
    for var in ("HELM", "NOTIFYBC_CHART", "NOTIFY_INBOUND_BIN"):
        if not os.environ.get(var):
            print(f"check-migration-guide: {var} is not set", file=sys.stderr)
            return 1
    with open(GUIDE, encoding="utf-8") as f:
        blocks = dict(BLOCK.findall(f.read()))
    missing = [n for n in NEEDED if n not in blocks]
    if not check(not missing, "the guide has every marked block", ", ".join(missing)):
        return 1
    for release in ("nbc", "notify-bc"):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                follow(blocks, os.environ["NOTIFYBC_CHART"], release, tmp)
            except Exception as e:  # noqa: BLE001 - a failing step is a failed check
                check(False, f"following the guide with NotifyBC release {release!r}",
                      f"{type(e).__name__}: {e}")
    print(f"check-migration-guide: {passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
