#!/usr/bin/env python3
"""Consistency checks of the deployment assets that no generic validator does.

Run by docker/validate.sh from the repository root:

    python3 docker/check_assets.py dashboard   # stdlib only
    python3 docker/check_assets.py compose     # needs PyYAML

dashboard: docker/grafana/dashboards/ballast.json is a Grafana dashboard
(uid, title, panels with unique ids, grid positions inside 24 columns,
Prometheus targets on the provisioned datasource's uid), it shows every
metric the operations guide promises, and every `ballast_*` metric it
queries is one that proxy/src/telemetry/metrics.rs defines.

compose: every backend of docker/ballast/ballast.yaml is an address one of
docker/compose.yaml's origin services serves (fixed IP and an --origin
port), Prometheus scrapes the ballast service's admin port, and the demo
network's subnet is the one the Ballast config trusts.
"""

import json
import re
import sys
from pathlib import Path

DASHBOARD = Path("docker/grafana/dashboards/ballast.json")
DATASOURCES = Path("docker/grafana/provisioning/datasources/prometheus.yaml")
METRICS_RS = Path("proxy/src/telemetry/metrics.rs")
COMPOSE = Path("docker/compose.yaml")
BALLAST_CONFIG = Path("docker/ballast/ballast.yaml")
PROMETHEUS = Path("docker/prometheus/prometheus.yml")

# What the dashboard must show (docs/operations.md, "Metrics").
REQUIRED_METRICS = [
    "ballast_backend_share",
    "ballast_requests_total",
    "ballast_request_duration_seconds_bucket",
    "ballast_region_spill_fraction",
    "ballast_spilled_requests_total",
    "ballast_canary_breaker_trips_total",
    "ballast_outlier_ejections_total",
    "ballast_residency_rejections_total",
    "ballast_priority_tier_load",
]


class Failures:
    def __init__(self):
        self.messages = []

    def check(self, condition, message):
        if not condition:
            self.messages.append(message)

    def finish(self, what):
        if self.messages:
            for message in self.messages:
                print(f"  FAIL {what}: {message}")
            sys.exit(1)


def defined_metrics():
    """Metric names proxy/src/telemetry/metrics.rs registers, with the ballast_ prefix."""
    source = METRICS_RS.read_text()
    names = re.findall(
        r'(?:Opts::new|HistogramOpts::new|IntGauge::new|counter|gauge)\(\s*"([a-z_]+)"', source
    )
    defined = set()
    for name in names:
        defined.add(f"ballast_{name}")
        if name.endswith("_seconds"):
            for suffix in ("_bucket", "_sum", "_count"):
                defined.add(f"ballast_{name}{suffix}")
    return defined


def check_dashboard():
    failures = Failures()
    dashboard = json.loads(DASHBOARD.read_text())
    datasource_uid = re.search(r"^\s*uid:\s*(\S+)", DATASOURCES.read_text(), re.M).group(1)
    for key in ("uid", "title", "panels", "schemaVersion"):
        failures.check(key in dashboard, f"no top-level {key!r}")
    ids = [p.get("id") for p in dashboard.get("panels", [])]
    failures.check(len(ids) == len(set(ids)), f"panel ids repeat: {ids}")
    queried = set()
    graphs = 0
    for panel in dashboard.get("panels", []):
        title = panel.get("title", "?")
        grid = panel.get("gridPos", {})
        failures.check(
            all(k in grid for k in "xywh") and grid["x"] + grid["w"] <= 24,
            f"panel {title!r}: gridPos {grid} is not inside 24 columns",
        )
        if panel.get("type") == "row":
            continue
        graphs += 1
        failures.check(
            panel.get("datasource", {}).get("uid") == datasource_uid,
            f"panel {title!r}: datasource is not the provisioned uid {datasource_uid!r}",
        )
        targets = panel.get("targets", [])
        failures.check(targets, f"panel {title!r} has no query")
        for target in targets:
            expr = target.get("expr", "")
            failures.check(expr, f"panel {title!r}: a target without expr")
            failures.check(
                target.get("datasource", {}).get("uid") == datasource_uid,
                f"panel {title!r}: target datasource is not {datasource_uid!r}",
            )
            queried.update(re.findall(r"\bballast_[a-z_]+", expr))
    defined = defined_metrics()
    failures.check(len(defined) >= 13, f"found only {sorted(defined)} in {METRICS_RS}")
    for metric in REQUIRED_METRICS:
        failures.check(metric in queried, f"no panel shows {metric}")
    for metric in sorted(queried - defined):
        failures.check(False, f"{metric} is queried but {METRICS_RS} does not define it")
    failures.finish(str(DASHBOARD))
    print(
        f"  ok   {DASHBOARD}: {graphs} panels, {len(queried)} metrics queried, "
        f"all defined in {METRICS_RS}"
    )


def check_compose():
    import yaml  # PyYAML: comes with yamllint in the validation venv

    failures = Failures()
    compose = yaml.safe_load(COMPOSE.read_text())
    config = yaml.safe_load(BALLAST_CONFIG.read_text())
    services = compose["services"]

    def address(service):
        networks = services[service].get("networks", {})
        return networks.get("demo", {}).get("ipv4_address") if isinstance(networks, dict) else None

    served = set()
    for name, service in services.items():
        command = service.get("command") or []
        if "target" in service.get("build", {}) and service["build"]["target"] == "origin":
            for arg in command:
                match = re.fullmatch(r"--origin=[^@]+@0\.0\.0\.0:(\d+)(/\S+)?", arg)
                if match:
                    served.add(f"{address(name)}:{match.group(1)}")
                elif not arg.startswith("--control="):
                    failures.check(False, f"service {name}: unexpected argument {arg!r}")
    backends = [b["addr"] for pool in config["pools"].values() for b in pool["backends"]]
    for backend in backends:
        failures.check(backend in served, f"backend {backend} is served by no origin service")

    ballast = services["ballast"]
    admin_port = config["admin"]["address"].rsplit(":", 1)[1]
    listen_port = config["listeners"][0]["address"].rsplit(":", 1)[1]
    failures.check(
        "./ballast:/etc/ballast:ro" in ballast.get("volumes", []),
        "the ballast service does not mount ./ballast at /etc/ballast",
    )
    failures.check(
        config["admin"].get("token_env") in ballast.get("environment", {}),
        "the ballast service does not set the admin token variable",
    )
    prometheus = yaml.safe_load(PROMETHEUS.read_text())
    targets = [t for job in prometheus["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    failures.check(f"ballast:{admin_port}" in targets, f"Prometheus does not scrape ballast:{admin_port}")
    traffic = " ".join(services["traffic"]["command"])
    failures.check(
        f"{address('ballast')}:{listen_port}" in traffic,
        "the traffic generator does not target the ballast listener",
    )
    subnet = compose["networks"]["demo"]["ipam"]["config"][0]["subnet"]
    trusted = [p for rule in config["geo"]["client_region"] for p in rule.get("trusted_peers", [])]
    failures.check(subnet in trusted, f"the Ballast config does not trust the demo subnet {subnet}")
    failures.finish(str(COMPOSE))
    print(
        f"  ok   {COMPOSE}: {len(backends)} backends of {BALLAST_CONFIG} served by origin services, "
        f"Prometheus scrapes ballast:{admin_port}"
    )


if __name__ == "__main__":
    checks = {"dashboard": check_dashboard, "compose": check_compose}
    if len(sys.argv) != 2 or sys.argv[1] not in checks:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(checks)}")
    checks[sys.argv[1]]()
