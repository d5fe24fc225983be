#!/usr/bin/env python3
"""Validates openshift/notify-inbound-template.yaml and the Helm chart helm/notify-inbound
(run by scripts/validate-manifests.sh).

1. The Template's own structure: parameters declared, required, all used, none undeclared.
2. Its objects rendered with parameters (scripts/render_template.py, as `oc process` would),
   every core-kind object validated strictly against the Kubernetes JSON schemas
   (kubernetes-validate) for the oldest and newest Kubernetes version the package knows.
3. What no schema says: the Route is passthrough TLS with the HAProxy timeout annotation and
   points at the Service's SMTP port; the Deployment runs as an arbitrary non-root UID with a
   read-only root filesystem, no privilege escalation, no capabilities, probes on the operations
   port and resources; the ConfigMap's config.local.toml uses only known keys, listens with
   implicit TLS on the port the Service and Route use, serves the mounted Secret's certificate
   and exposes the operations endpoint on the probed port; HPA and NetworkPolicy fit; no Secret
   is created (existing ones are referenced); the grace period covers the drain delay and the
   shutdown grace.
4. The Helm chart, with the helm binary named by HELM: `helm lint --strict`, then
   `helm template` with several value sets (OpenShift Route and ServiceMonitor APIs on and
   off, coordination, access token, autoscaling) through the same schema and object checks,
   plus the chart's own: required values fail naming the key, NotifyBC's Service naming,
   Redis wiring, the ServiceMonitor.

Exits non-zero when any check fails. Prints `N passed, M failed` last.
"""

from __future__ import annotations

import copy
import os
import subprocess
import re
import sys
import tempfile
import tomllib
from typing import Any, Callable

import kubernetes_validate
from kubernetes_validate import utils as kv_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import render_template  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.environ.get(
    "NOTIFY_INBOUND_TEMPLATE", os.path.join(ROOT, "openshift", "notify-inbound-template.yaml")
)
DEFAULT_TOML = os.path.join(ROOT, "config.default.toml")

REQUIRED_PARAMS = ["INBOUND_SMTP_DOMAIN", "NOTIFYBC_URL", "IMAGE"]
EXPECTED_PARAMS = REQUIRED_PARAMS + ["TLS_SECRET_NAME", "API_TOKEN_SECRET_NAME"]
CORE_KINDS = {
    "ConfigMap",
    "Secret",
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "NetworkPolicy",
    "PodDisruptionBudget",
}
EXPECTED_KINDS = (CORE_KINDS - {"Secret"}) | {"Route"}
CHART = os.path.join(ROOT, "helm", "notify-inbound")
ROUTER_SELECTOR = {"policy-group.network.openshift.io/ingress": ""}
SMTP_PORT = 8465
OPS_PORT = 9025
LISTENER_KEYS = {"port", "ip", "tls", "proxy_protocol", "xclient"}

SAMPLE_PARAMS = {
    "INBOUND_SMTP_DOMAIN": "notify-smtp.apps.example.org",
    "MAIL_DOMAINS": "mx.example.org",
    "NOTIFYBC_URL": "http://nbc-notify-bc:80",
    "IMAGE": "image-registry.openshift-image-registry.svc:5000/notify/notify-inbound:1.0.0",
    "TLS_SECRET_NAME": "smtp-tls",
}


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        # Said before every check's name: which manifests are being checked.
        self.prefix = ""

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        what = self.prefix + what
        if ok:
            self.passed += 1
            print(f"ok    {what}")
        else:
            self.failed += 1
            print(f"FAIL  {what}" + (f": {detail}" if detail else ""))
        return ok

    def run(self, what: str, fn: Callable[[], Any]) -> Any:
        """Runs fn; an exception is a failure of `what`."""
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - every error is reported as a failed check
            self.check(False, what, f"{type(e).__name__}: {e}")
            return None
        self.check(True, what)
        return result


def walk_strings(node: Any, path: str = ""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk_strings(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk_strings(v, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def walk_keys(node: Any):
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from walk_keys(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk_keys(v)


def find_key(node: Any, key: str, path: str = ""):
    """Every (path, value) where `key` appears at any depth."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield f"{path}.{k}", v
            yield from find_key(v, key, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from find_key(v, key, f"{path}[{i}]")


def check_template(c: Checks, template: dict) -> None:
    c.check(template.get("apiVersion") == "template.openshift.io/v1",
            "Template apiVersion is template.openshift.io/v1", str(template.get("apiVersion")))
    c.check(bool(template.get("metadata", {}).get("name")), "Template has metadata.name")
    params = template.get("parameters", [])
    names = [p.get("name") for p in params]
    c.check(len(names) == len(set(names)), "Template parameter names are unique", str(names))
    for p in params:
        c.check(bool(re.fullmatch(r"[A-Z][A-Z0-9_]*", p.get("name", ""))),
                f"parameter {p.get('name')!r} is an upper-case name")
    by_name = {p.get("name"): p for p in params}
    for name in EXPECTED_PARAMS:
        c.check(name in by_name, f"Template declares parameter {name}")
    for name in REQUIRED_PARAMS:
        p = by_name.get(name, {})
        c.check(p.get("required") is True and not p.get("value"),
                f"parameter {name} is required and has no default")

    used: set[str] = set()
    for _, s in walk_strings(template.get("objects", [])):
        used.update(render_template.REF.findall(s))
        m = render_template.WHOLE_JSON_REF.match(s)
        if m:
            used.add(m.group(1))
        for inner in re.findall(r"\$\{\{([A-Za-z0-9_]+)\}\}", s):
            used.add(inner)
    undeclared = sorted(used - set(names))
    unused = sorted(set(names) - used)
    c.check(not undeclared, "every ${PARAM} used in objects is declared", ", ".join(undeclared))
    c.check(not unused, "every declared parameter is used", ", ".join(unused))
    bad_keys = [k for k in walk_keys(template.get("objects", [])) if "${" in str(k)]
    c.check(not bad_keys, "no parameter inside a map key (oc substitutes values only)",
            ", ".join(map(str, bad_keys)))

    kinds = [o.get("kind") for o in template.get("objects", [])]
    for kind in sorted(EXPECTED_KINDS):
        c.check(kind in kinds, f"Template has a {kind}")

    # Without the required parameters rendering must fail, naming them.
    for name in REQUIRED_PARAMS:
        given = {k: v for k, v in SAMPLE_PARAMS.items() if k != name}
        try:
            render_template.render(template, given)
            c.check(False, f"rendering without {name} fails", "it rendered")
        except render_template.RenderError as e:
            c.check(name in str(e), f"rendering without {name} fails naming it", str(e))


def validate_schemas(c: Checks, objects: list[dict]) -> None:
    versions = kv_utils.all_versions()
    targets = sorted({versions[0], versions[-1]}, key=lambda v: [int(x) for x in v.split(".")])
    for obj in objects:
        kind = obj.get("kind")
        name = obj.get("metadata", {}).get("name")
        if kind not in CORE_KINDS:
            continue
        for version in targets:
            what = f"schema {kind}/{name} (Kubernetes {version}, strict)"
            try:
                kubernetes_validate.validate(obj, version, strict=True)
                c.check(True, what)
            except kubernetes_validate.ValidationError as e:
                where = ".".join(str(p) for p in e.path)
                c.check(False, what, f"{where}: {e.message}")
            except Exception as e:  # noqa: BLE001 - schema not found etc. is a failure too
                c.check(False, what, f"{type(e).__name__}: {e}")


def one(objects: list[dict], kind: str) -> dict:
    found = [o for o in objects if o.get("kind") == kind]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind}, found {len(found)}")
    return found[0]


def flatten_keys(table: dict, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for k, v in table.items():
        full = f"{prefix}{k}"
        keys.add(full)
        if isinstance(v, dict):
            keys |= flatten_keys(v, full + ".")
    return keys


def check_objects(c: Checks, objects: list[dict], params: dict[str, str]) -> None:
    try:
        dep = one(objects, "Deployment")
        svc = one(objects, "Service")
        route = one(objects, "Route")
        cm = one(objects, "ConfigMap")
        hpa = one(objects, "HorizontalPodAutoscaler")
        netpol = one(objects, "NetworkPolicy")
    except AssertionError as e:
        c.check(False, "one object of each kind", str(e))
        return
    leftover = [(p, s) for o in objects for p, s in walk_strings(o) if "${" in s]
    c.check(not leftover, "no ${...} left after rendering", str(leftover[:3]))

    # --- Secrets: referenced, never created, so that applying again cannot blank them.
    secrets = [o["metadata"]["name"] for o in objects if o.get("kind") == "Secret"]
    c.check(not secrets, "no Secret object is created (existing Secrets are referenced)",
            str(secrets))

    # --- Deployment
    pod = dep["spec"]["template"]["spec"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    containers = pod.get("containers", [])
    c.check(len(containers) == 1, "Deployment has one container")
    if not containers:
        return
    ctr = containers[0]
    c.check(ctr.get("image") == params["IMAGE"], "container image is the IMAGE parameter")
    run_as = list(find_key(pod, "runAsUser")) + list(find_key(pod, "runAsGroup"))
    run_as += list(find_key(pod, "fsGroup"))
    c.check(not run_as, "no fixed runAsUser/runAsGroup/fsGroup (arbitrary UID)", str(run_as))
    psc = pod.get("securityContext", {})
    csc = ctr.get("securityContext", {})
    c.check(psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True,
            "runAsNonRoot: true")
    c.check(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem: true")
    c.check(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false")
    c.check("ALL" in csc.get("capabilities", {}).get("drop", []), "capabilities drop ALL")
    c.check(not csc.get("capabilities", {}).get("add"), "no capabilities added")
    c.check(csc.get("privileged") is not True, "not privileged")
    c.check(not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")),
            "no host namespaces")
    c.check(pod.get("automountServiceAccountToken") is False,
            "no service account token mounted (the server needs no Kubernetes API)")
    c.check("replicas" not in dep["spec"], "Deployment leaves replicas to the HPA")

    ports = {p.get("name"): p.get("containerPort") for p in ctr.get("ports", [])}

    def probe_port(probe: dict) -> Any:
        port = probe.get("httpGet", {}).get("port")
        return ports.get(port, port) if isinstance(port, str) else port

    for kind, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        probe = ctr.get(kind, {})
        c.check(probe.get("httpGet", {}).get("path") == path, f"{kind} on {path}")
        c.check(probe_port(probe) == OPS_PORT, f"{kind} on the operations port {OPS_PORT}")
    res = ctr.get("resources", {})
    for side in ("requests", "limits"):
        for r in ("cpu", "memory"):
            c.check(bool(res.get(side, {}).get(r)), f"resources.{side}.{r} set")
    c.check(SMTP_PORT in ports.values(), f"container port {SMTP_PORT} (SMTP, implicit TLS)")
    c.check(OPS_PORT in ports.values(), f"container port {OPS_PORT} (operations)")

    mounts = {m["name"]: m for m in ctr.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    tls_vol = [n for n, v in vols.items()
               if v.get("secret", {}).get("secretName") == params["TLS_SECRET_NAME"]]
    c.check(len(tls_vol) == 1, "the TLS Secret is a pod volume")
    tls_mount = mounts.get(tls_vol[0]) if tls_vol else None
    c.check(tls_mount is not None, "the TLS Secret volume is mounted")
    if tls_mount:
        c.check("subPath" not in tls_mount,
                "TLS Secret mounted as a directory (no subPath), so renewals reach the pod")
    cm_vol = [n for n, v in vols.items()
              if v.get("configMap", {}).get("name") == cm["metadata"]["name"]]
    cm_mount = mounts.get(cm_vol[0]) if cm_vol else None
    c.check(cm_mount is not None, "the ConfigMap is mounted")
    args = ctr.get("args", [])
    config_path = args[args.index("--config") + 1] if "--config" in args[:-1] else None
    c.check(config_path is not None, "container args pass --config FILE", str(args))
    if cm_mount and config_path:
        c.check(config_path == os.path.join(cm_mount["mountPath"], "config.local.toml"),
                "--config points at config.local.toml in the ConfigMap mount", config_path)
    c.check(any(m.get("mountPath") == "/tmp" for m in mounts.values()),
            "a writable /tmp (emptyDir) despite the read-only root filesystem")

    # --- ConfigMap's config.local.toml
    text = cm.get("data", {}).get("config.local.toml")
    c.check(text is not None, "ConfigMap holds config.local.toml")
    if text is None:
        return
    conf = c.run("config.local.toml is valid TOML", lambda: tomllib.loads(text))
    with open(DEFAULT_TOML, "rb") as f:
        defaults = tomllib.load(f)
    if conf is not None:
        known = flatten_keys(defaults) | {"inbound_smtp_server.listening_smtp_port"}
        rest = copy.deepcopy(conf)
        listeners = rest.get("inbound_smtp_server", {}).pop("listeners", [])
        if "coordination" in rest and "coordination" not in defaults:
            # The chart writes [coordination] only when asked to; a build without Redis
            # coordination does not know the table (its server would refuse it).
            rest.pop("coordination")
            print("note  [coordination] is not in this build's config.default.toml: "
                  "its keys are checked against the chart's wiring only")
        unknown = sorted(k for k in flatten_keys(rest) if k not in known)
        c.check(not unknown, "config.local.toml uses only keys of config.default.toml",
                ", ".join(unknown))
        for i, l in enumerate(listeners):
            extra = sorted(set(l) - LISTENER_KEYS)
            c.check(not extra, f"listener {i} uses only known keys", ", ".join(extra))
        implicit = [l for l in listeners if l.get("tls") == "implicit"]
        c.check(any(l.get("port") == SMTP_PORT for l in implicit),
                f"an implicit-TLS listener on {SMTP_PORT}", str(listeners))
        c.check(all(l.get("ip") in ("0.0.0.0", "::") for l in implicit),
                "the implicit-TLS listener binds all addresses (reachable from the router)")
        ops = conf.get("operations", {}).get("listen")
        c.check(ops == f"0.0.0.0:{OPS_PORT}", f"operations.listen is 0.0.0.0:{OPS_PORT}",
                str(ops))
        opts = conf.get("inbound_smtp_server", {}).get("options", {})
        if tls_mount:
            base = tls_mount["mountPath"].rstrip("/")
            c.check(opts.get("cert") == f"{base}/tls.crt",
                    "options.cert is tls.crt of the mounted TLS Secret", str(opts.get("cert")))
            c.check(opts.get("key") == f"{base}/tls.key",
                    "options.key is tls.key of the mounted TLS Secret", str(opts.get("key")))
        c.check(conf.get("internal_http_host") == params["NOTIFYBC_URL"],
                "internal_http_host is the NotifyBC URL", str(conf.get("internal_http_host")))
        domains = [d.strip() for d in
                   conf.get("inbound_smtp_server", {}).get("domain", "").split(",")]
        mail_domain = params.get("MAIL_DOMAIN", params["INBOUND_SMTP_DOMAIN"])
        c.check(mail_domain in domains,
                f"inbound_smtp_server.domain includes {mail_domain}", str(domains))
        limits = {**defaults["inbound_smtp_server"]["limits"],
                  **conf.get("inbound_smtp_server", {}).get("limits", {})}
        drain, grace = limits.get("drain_delay_secs", 0), limits.get("shutdown_grace_secs", 0)
        tgp = pod.get("terminationGracePeriodSeconds", 30)
        c.check(isinstance(tgp, int) and tgp > drain + grace,
                "terminationGracePeriodSeconds exceeds drain_delay_secs + shutdown_grace_secs",
                f"{tgp} vs {drain} + {grace}")

    # --- Service
    svc_ports = svc["spec"].get("ports", [])
    c.check(svc["spec"].get("selector", {}).items() <= pod_labels.items(),
            "Service selects the Deployment's pods")

    def target(p: dict) -> Any:
        t = p.get("targetPort", p.get("port"))
        return ports.get(t, t) if isinstance(t, str) else t

    c.check(any(target(p) == SMTP_PORT for p in svc_ports), f"Service reaches port {SMTP_PORT}")

    # --- Route
    c.check(route.get("apiVersion") == "route.openshift.io/v1", "Route apiVersion")
    rspec = route.get("spec", {})
    c.check(rspec.get("tls", {}).get("termination") == "passthrough",
            "Route tls.termination is passthrough")
    c.check(rspec.get("tls", {}).get("insecureEdgeTerminationPolicy", "None") in ("None",
                                                                                 "Redirect"),
            "Route refuses plain-text traffic")
    c.check("certificate" not in rspec.get("tls", {}) and "key" not in rspec.get("tls", {}),
            "passthrough Route carries no certificate (the pods serve it)")
    ann = route.get("metadata", {}).get("annotations", {})
    timeout = ann.get("haproxy.router.openshift.io/timeout")
    c.check(bool(timeout and re.fullmatch(r"\d+(us|ms|s|m|h|d)?", timeout)),
            "Route has haproxy.router.openshift.io/timeout in HAProxy time format", str(timeout))
    c.check(rspec.get("host") == params["INBOUND_SMTP_DOMAIN"],
            "Route host is the configured SMTP host", str(rspec.get("host")))
    to = rspec.get("to", {})
    c.check(to.get("kind") == "Service" and to.get("name") == svc["metadata"]["name"],
            "Route points at the Service")
    tp = rspec.get("port", {}).get("targetPort")
    c.check(any(tp in (p.get("name"), p.get("port"), p.get("targetPort")) and
                target(p) == SMTP_PORT for p in svc_ports),
            f"Route targetPort is the Service's SMTP port ({SMTP_PORT})", str(tp))
    allowed_route_keys = {"host", "path", "to", "alternateBackends", "port", "tls",
                          "wildcardPolicy", "subdomain", "httpHeaders"}
    c.check(set(rspec) <= allowed_route_keys, "Route spec has only Route fields",
            str(sorted(set(rspec) - allowed_route_keys)))

    # --- HorizontalPodAutoscaler
    ref = hpa["spec"].get("scaleTargetRef", {})
    c.check(ref.get("kind") == "Deployment" and ref.get("name") == dep["metadata"]["name"]
            and ref.get("apiVersion") == "apps/v1", "HPA scales the Deployment")
    mn, mx = hpa["spec"].get("minReplicas"), hpa["spec"].get("maxReplicas")
    c.check(isinstance(mn, int) and isinstance(mx, int) and 1 <= mn <= mx,
            "HPA min/max replicas are integers with 1 <= min <= max", f"{mn!r}, {mx!r}")

    # --- NetworkPolicy
    sel = netpol["spec"].get("podSelector", {}).get("matchLabels", {})
    c.check(bool(sel) and sel.items() <= pod_labels.items(),
            "NetworkPolicy selects the Deployment's pods")
    c.check("Ingress" in netpol["spec"].get("policyTypes", []), "NetworkPolicy restricts ingress")
    rules = netpol["spec"].get("ingress", [])

    def rule_ports(r: dict) -> set:
        return {ports.get(p.get("port"), p.get("port")) for p in r.get("ports", [])}

    smtp_rules = [r for r in rules if SMTP_PORT in rule_ports(r)]
    c.check(bool(smtp_rules) and all(
        any("namespaceSelector" in f for f in r.get("from", [])) for r in smtp_rules),
        f"NetworkPolicy lets the router namespace reach {SMTP_PORT}")
    selectors = [f["namespaceSelector"] for r in smtp_rules for f in r.get("from", [])
                 if "namespaceSelector" in f]
    c.check(any(sel == {"matchLabels": ROUTER_SELECTOR} for sel in selectors),
            "routers admitted by OpenShift's policy-group.network.openshift.io/ingress label "
            "(host-network routers included)", str(selectors))
    c.check(any(OPS_PORT in rule_ports(r) for r in rules),
            f"NetworkPolicy lets the operations port {OPS_PORT} be reached")


def check_with_binary(c: Checks, objects: list[dict]) -> None:
    """Runs `notify-inbound check-config` on the rendered config.local.toml, with the Secret's
    file paths pointed at a throw-away self-signed pair, when NOTIFY_INBOUND_BIN names the
    binary. Said out loud when not run."""
    binary = os.environ.get("NOTIFY_INBOUND_BIN")
    if not binary:
        print("note  `notify-inbound check-config` on the ConfigMap not run: "
              "set NOTIFY_INBOUND_BIN=target/debug/notify-inbound to run it")
        return
    cm = one(objects, "ConfigMap")
    text = cm["data"]["config.local.toml"]
    with tempfile.TemporaryDirectory() as d:
        gen = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=validate-manifests", "-keyout", f"{d}/tls.key", "-out", f"{d}/tls.crt"],
            capture_output=True, text=True)
        if not c.check(gen.returncode == 0, "openssl makes a test certificate", gen.stderr):
            return
        with open(f"{d}/config.local.toml", "w", encoding="utf-8") as f:
            f.write(text.replace("/etc/notify-inbound/tls/", f"{d}/"))
        run = subprocess.run([binary, "check-config", "--config", f"{d}/config.local.toml"],
                             capture_output=True, text=True)
        c.check(run.returncode == 0, f"{binary} check-config accepts the ConfigMap",
                (run.stderr or run.stdout).strip()[-500:])
        # A control that must be refused, so that a binary which accepts anything (or has no
        # check-config) cannot pass the check above.
        with open(f"{d}/broken.toml", "w", encoding="utf-8") as f:
            f.write(text.replace("/etc/notify-inbound/tls/", f"{d}/")
                    .replace('listen = "0.0.0.0:9025"', 'listen = "0.0.0.0:9025"\nno_such_key = 1'))
        bad = subprocess.run([binary, "check-config", "--config", f"{d}/broken.toml"],
                             capture_output=True, text=True)
        c.check(bad.returncode != 0 and "no_such_key" in (bad.stderr + bad.stdout),
                f"{binary} check-config refuses an unknown key, naming it (control)",
                f"exit {bad.returncode}")


def check_containerfile(c: Checks) -> None:
    """What the image must be: multi-stage, locked release build, small runtime, numeric
    non-root user, the operations and SMTP ports, the binary as entry point."""
    path = os.path.join(ROOT, "Containerfile")
    text = c.run("read Containerfile", lambda: open(path, encoding="utf-8").read())
    if text is None:
        return
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    froms = [l for l in lines if l.upper().startswith("FROM ")]
    c.check(len(froms) >= 2, "Containerfile is multi-stage", str(froms))
    c.check(bool(froms) and re.search(r"rust:1\.95", froms[0]) is not None,
            "builder stage is rust:1.95", froms[0] if froms else "")
    c.check(re.search(r"cargo build --release --locked", text) is not None,
            "builder runs cargo build --release --locked")
    c.check(bool(froms) and re.search(r"distroless|slim", froms[-1]) is not None,
            "runtime stage is a small image", froms[-1] if froms else "")
    users = [l.split(None, 1)[1] for l in lines if l.upper().startswith("USER ")]
    c.check(bool(users) and re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", users[-1]) is not None
            and users[-1].split(":")[0] != "0", "USER is numeric and not root", str(users))
    exposed = {p for l in lines if l.upper().startswith("EXPOSE ") for p in l.split()[1:]}
    c.check({str(SMTP_PORT), str(OPS_PORT)} <= exposed, "EXPOSE the SMTP and operations ports",
            str(sorted(exposed)))
    entry = [l for l in lines if l.upper().startswith("ENTRYPOINT ")]
    c.check(bool(entry) and "notify-inbound" in entry[-1], "ENTRYPOINT is the notify-inbound binary",
            str(entry))
    ignore = os.path.join(ROOT, ".dockerignore")
    c.check(os.path.exists(ignore) and "target/" in open(ignore, encoding="utf-8").read(),
            ".dockerignore keeps target/ out of the build context")



# ---------------------------------------------------------------------------- Helm chart

CHART_IMAGE = "image-registry.openshift-image-registry.svc:5000/notify/notify-inbound:1.0.0"
OPENSHIFT_APIS = ["route.openshift.io/v1/Route", "monitoring.coreos.com/v1/ServiceMonitor"]
# What every rendering of the chart below is given; a case adds to it.
CHART_BASE = [
    "inboundSmtpServer.domain=notify.example.org",
    "tls.existingSecret=smtp-tls",
    "route.host=notify-smtp.apps.example.org",
    "image.repository=image-registry.openshift-image-registry.svc:5000/notify/notify-inbound",
    "image.tag=1.0.0",
]


def helm_binary() -> str | None:
    return os.environ.get("HELM")


def helm_template(helm: str, sets: list[str], apis: list[str],
                  release: str = "smtp") -> subprocess.CompletedProcess:
    args = [helm, "template", release, CHART, "--namespace", "notify"]
    for a in apis:
        args += ["--api-versions", a]
    for kv in sets:
        args += ["--set", kv]
    return subprocess.run(args, capture_output=True, text=True)


def load_docs(text: str) -> list[dict]:
    import yaml
    return [d for d in yaml.safe_load_all(text) if d]


def chart_config(objects: list[dict]) -> dict:
    cm = one(objects, "ConfigMap")
    return tomllib.loads(cm["data"]["config.local.toml"])


def env_of(objects: list[dict]) -> dict[str, Any]:
    ctr = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in ctr.get("env", [])}


def check_chart(c: Checks) -> None:
    helm = helm_binary()
    c.prefix = "[chart] "
    if not c.check(bool(helm), "HELM names a helm binary (scripts/ensure-helm.sh installs one)"):
        c.prefix = ""
        return
    lint = subprocess.run([helm, "lint", "--strict", CHART] +
                          [x for kv in CHART_BASE for x in ("--set", kv)],
                          capture_output=True, text=True)
    c.check(lint.returncode == 0, "helm lint --strict passes", (lint.stdout + lint.stderr)[-800:])
    print("      " + (lint.stdout.strip().splitlines() or [""])[-1])

    # Required values: each missing one fails the rendering, naming its key.
    for key, apis in (("inboundSmtpServer.domain", []), ("tls.existingSecret", []),
                      ("route.host", OPENSHIFT_APIS)):
        sets = [kv for kv in CHART_BASE if not kv.startswith(key + "=")]
        r = helm_template(helm, sets, apis)
        c.check(r.returncode != 0 and key in r.stderr,
                f"helm template without {key} fails naming it", r.stderr.strip()[-300:])

    cases = [
        ("OpenShift, defaults", [], OPENSHIFT_APIS, "smtp"),
        ("OpenShift, autoscaling, token, coordination, ServiceMonitor",
         ["autoscaling.enabled=true", "notifyBC.accessToken.existingSecret=nbc-token",
          "coordination.enabled=true", "serviceMonitor.enabled=true", "notifyBC.release=nbc"],
         OPENSHIFT_APIS, "smtp"),
        ("plain Kubernetes", ["notifyBC.release=nbc"], [], "smtp"),
    ]
    for name, extra, apis, release in cases:
        c.prefix = f"[chart: {name}] "
        r = helm_template(helm, CHART_BASE + extra, apis, release)
        if not c.check(r.returncode == 0, "helm template renders", r.stderr.strip()[-500:]):
            continue
        objects = c.run("the rendering is YAML", lambda: load_docs(r.stdout))
        if not objects:
            continue
        kinds = sorted(o["kind"] for o in objects)
        print(f"      rendered: {', '.join(kinds)}")
        validate_schemas(c, objects)
        has_route = any(o["kind"] == "Route" for o in objects)
        c.check(has_route == bool(apis), "a Route exactly where route.openshift.io/v1 exists")
        sets = dict(kv.split("=", 1) for kv in CHART_BASE + extra)
        nbc = sets.get("notifyBC.release", "notify-bc")
        expected_url = f"http://{nbc if 'notify-bc' in nbc else nbc + '-notify-bc'}:80"
        params = {
            "IMAGE": CHART_IMAGE,
            "TLS_SECRET_NAME": "smtp-tls",
            "NOTIFYBC_URL": expected_url,
            "INBOUND_SMTP_DOMAIN": "notify-smtp.apps.example.org",
            "MAIL_DOMAIN": "notify.example.org",
        }
        autoscaling = "autoscaling.enabled=true" in extra
        if has_route and autoscaling:
            check_objects(c, objects, params)
        dep = one(objects, "Deployment")
        c.check(("replicas" in dep["spec"]) != autoscaling,
                "replicas set exactly when the HPA does not own them")
        conf = chart_config(objects)
        c.check(conf.get("rest_api_root") == "/api", "rest_api_root is /api")
        c.check(conf.get("internal_http_host") == expected_url,
                f"the API URL follows NotifyBC's Service naming ({expected_url})",
                str(conf.get("internal_http_host")))
        env = env_of(objects)
        token = env.get("NOTIFY_INBOUND__API__ACCESS_TOKEN")
        if "notifyBC.accessToken.existingSecret=nbc-token" in extra:
            ref = (token or {}).get("valueFrom", {}).get("secretKeyRef", {})
            c.check(ref.get("name") == "nbc-token" and ref.get("key") == "access-token",
                    "the access token comes from the existing Secret", str(ref))
        else:
            c.check(token is None, "no access token without a Secret")
        redis_pw = env.get("NOTIFY_INBOUND__COORDINATION__REDIS_PASSWORD")
        if "coordination.enabled=true" in extra:
            ref = (redis_pw or {}).get("valueFrom", {}).get("secretKeyRef", {})
            c.check(ref.get("name") == f"{nbc}-redis" and ref.get("key") == "redis-password",
                    "the Redis password comes from NotifyBC's Bitnami Secret <release>-redis",
                    str(ref))
            url = conf.get("coordination", {}).get("redis_url")
            c.check(url == f"redis://{nbc}-redis-master:6379/0",
                    "coordination.redis_url is NotifyBC's Bitnami Redis master Service", str(url))
        else:
            c.check(redis_pw is None and "coordination" not in conf,
                    "no coordination unless enabled")
        monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
        if "serviceMonitor.enabled=true" in extra:
            svc = one(objects, "Service")
            ep = (monitors[0]["spec"].get("endpoints") or [{}])[0] if monitors else {}
            c.check(len(monitors) == 1 and ep.get("port") == "ops"
                    and ep.get("path") == "/metrics"
                    and monitors[0]["spec"]["selector"]["matchLabels"].items()
                    <= svc["metadata"]["labels"].items(),
                    "the ServiceMonitor scrapes /metrics on the Service's ops port")
        else:
            c.check(not monitors, "no ServiceMonitor unless enabled")
        if not autoscaling:
            check_with_binary(c, objects)
    c.prefix = ""


def main() -> int:
    c = Checks()
    template = c.run(f"load {os.path.relpath(TEMPLATE, ROOT)}",
                     lambda: render_template.load_template(TEMPLATE))
    if template is not None:
        check_template(c, template)
        objects = c.run("render the Template's objects with sample parameters",
                        lambda: render_template.render(template, SAMPLE_PARAMS))
        if objects is not None:
            validate_schemas(c, objects)
            check_objects(c, objects, render_template.resolve_parameters(template,
                                                                         SAMPLE_PARAMS))
            check_with_binary(c, objects)
    check_containerfile(c)
    check_chart(c)
    print(f"validate-manifests: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed or c.passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
