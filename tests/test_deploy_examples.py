"""The example files in deploy/ work: the systemd units pass `systemd-analyze verify` (with this checkout's
`playcast` and the example env files), their ExecStart and every Kubernetes container's command line is accepted by
the real `playcast` CLI, every PLAYCAST_* variable they set is one playcast reads, and the Kubernetes objects refer
to each other (Secrets and keys, Service selectors and ports, scale targets, the metric the autoscalers query).

Runs the CLI and systemd-analyze for real; no cluster is needed (there is none here)."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import REPO

DEPLOY = REPO / "deploy"
PLAYCAST = REPO / ".venv" / "bin" / "playcast"
SRC = REPO / "src" / "playcast"


def _knobs() -> set[str]:
    """Every PLAYCAST_* name playcast's source mentions (what it reads from the environment)."""
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        names |= set(re.findall(r"PLAYCAST_[A-Z0-9_]+", path.read_text()))
    return names


def _accepts(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """The CLI parses this command line (with --help appended it stops before running anything)."""
    return subprocess.run([str(PLAYCAST), *argv, "--help"], capture_output=True, text=True, timeout=60, cwd=REPO)


def _env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


# ------------------------------------------------------------------------------------------------ systemd
@pytest.mark.parametrize("unit", ["playcast-server", "playcast-host"])
def test_systemd_unit_verifies_and_its_command_line_is_accepted(unit: str, tmp_path: Path) -> None:
    source = DEPLOY / "systemd" / f"{unit}.service"
    service = _unit(source)["Service"]
    env_name = Path(service["EnvironmentFile"]).name  # /etc/playcast/<name>.env
    example = DEPLOY / "systemd" / f"{env_name}.example"
    assert example.is_file(), f"{unit}: no {example.name} next to it"
    argv = service["ExecStart"].split()
    assert argv[0] == "/opt/playcast/venv/bin/playcast" and argv[1] == unit.removeprefix("playcast-")
    accepted = _accepts(argv[1:])
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr

    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here")
    local = tmp_path / source.name  # the same unit, pointing at this checkout's playcast and the example env
    local.write_text(source.read_text().replace(argv[0], str(PLAYCAST))
                     .replace(service["EnvironmentFile"], str(example)))
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", str(local)], capture_output=True, text=True,
                            timeout=60)
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stdout + verify.stderr


def test_the_host_unit_keeps_its_games_in_its_cgroup_and_stays_down_when_refused() -> None:
    service = _unit(DEPLOY / "systemd" / "playcast-host.service")["Service"]
    assert service["KillMode"] == "control-group"
    assert service["Delegate"] == "yes"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "3"  # `playcast host` exits 3 when the control plane refuses it
    assert int(service["TimeoutStopSec"]) >= 30
    server = _unit(DEPLOY / "systemd" / "playcast-server.service")["Service"]
    assert server["Restart"] == "always"


@pytest.mark.parametrize("name", ["server", "host"])
def test_systemd_env_examples_set_only_variables_playcast_reads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env_file(DEPLOY / "systemd" / f"{name}.env.example")
    assert set(env) <= _knobs(), f"not read by playcast: {sorted(set(env) - _knobs())}"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from playcast.config import Settings

    settings = Settings()
    if name == "host":
        assert settings.server_url == env["PLAYCAST_SERVER_URL"] and settings.host_token == env["PLAYCAST_HOST_TOKEN"]
        assert settings.location == env["PLAYCAST_LOCATION"] and settings.slots == int(env["PLAYCAST_SLOTS"])
        assert settings.public_address == env["PLAYCAST_PUBLIC_ADDRESS"]
    else:
        assert settings.database_url == env["PLAYCAST_DATABASE_URL"]
        assert settings.redis_url == env["PLAYCAST_REDIS_URL"]
        assert settings.admin_token == env["PLAYCAST_ADMIN_TOKEN"]
        assert settings.metrics_token == env["PLAYCAST_METRICS_TOKEN"]
        assert settings.capacity_window_s == float(env["PLAYCAST_CAPACITY_WINDOW_S"])


# ------------------------------------------------------------------------------------------------ Kubernetes
def _objects() -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] and doc["metadata"]["name"], path
            out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def _containers(objects: dict[tuple[str, str], dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(obj, c) for (kind, _), obj in objects.items() if kind in ("Deployment", "DaemonSet")
            for c in obj["spec"]["template"]["spec"]["containers"]]


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_kubernetes_workloads_run_real_command_lines_with_real_secrets_and_variables() -> None:
    objects = _objects()
    kinds = {kind for kind, _ in objects}
    assert {"Namespace", "Secret", "Deployment", "Service", "DaemonSet", "ScaledObject",
            "HorizontalPodAutoscaler", "ConfigMap"} <= kinds
    secrets = {name: set(obj["stringData"]) for (kind, name), obj in objects.items() if kind == "Secret"}
    knobs = _knobs()
    assert set().union(*secrets.values()) <= knobs
    for obj, c in _containers(objects):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        assert c["command"][0] == "playcast" and c["command"][1] in ("server", "host"), where
        accepted = _accepts(c["command"][1:])
        assert accepted.returncode == 0, where + ": " + accepted.stdout + accepted.stderr
        for env in c.get("env", []):
            assert env["name"] in knobs, f"{where}: playcast does not read {env['name']}"
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                assert ref["key"] in secrets[ref["name"]], f"{where}: no key {ref['key']} in Secret {ref['name']}"
        for source in c.get("envFrom", []):
            assert source["secretRef"]["name"] in secrets, where
        assert c["resources"]["requests"], where
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        assert _flag(c["command"], "--data-dir") in mounts, f"{where}: the data dir is not a volume"


def test_kubernetes_server_is_probed_on_healthz_and_reached_through_its_service() -> None:
    objects = _objects()
    server = objects[("Deployment", "playcast-server")]
    pod = server["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert _flag(container["command"], "--bind") == "0.0.0.0"
    port = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port["http"] == int(_flag(container["command"], "--port"))
    service = objects[("Service", "playcast-server")]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(port)
    monitor = objects[("ServiceMonitor", "playcast-server")]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["authorization"]["credentials"]["key"] in objects[("Secret", "playcast-server")]["stringData"]


def test_kubernetes_hosts_use_the_node_network_and_drain_before_they_go() -> None:
    objects = _objects()
    deployment = objects[("Deployment", "playcast-host-eu-west-1")]
    daemonset = objects[("DaemonSet", "playcast-host")]
    for obj in (deployment, daemonset):
        spec = obj["spec"]["template"]["spec"]
        assert spec["hostNetwork"] is True  # browsers reach the node's address, not a pod IP
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        assert env["PLAYCAST_PUBLIC_ADDRESS"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
        assert "PLAYCAST_HOST_TOKEN" in env and "PLAYCAST_SERVER_URL" in env
    (host,) = deployment["spec"]["template"]["spec"]["containers"]
    hook = host["lifecycle"]["preStop"]["exec"]["command"]
    assert hook[:2] == ["python3", "-c"]
    compile(hook[2], "preStop", "exec")  # the drain script is valid Python
    data_dir = _flag(host["command"], "--data-dir")
    assert f'"{data_dir}/host-id"' in hook[2] and "/drain" in hook[2]  # the agent keeps its id there
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 600
    ds = daemonset["spec"]["template"]["spec"]
    uinput = next(v for v in ds["volumes"] if v["name"] == "uinput")
    assert uinput["hostPath"] == {"path": "/dev/uinput", "type": "CharDevice"}
    assert {"mountPath": "/dev/uinput", "name": "uinput"} in ds["containers"][0]["volumeMounts"]


def test_autoscalers_target_the_hosts_on_a_metric_playcast_exports() -> None:
    objects = _objects()
    metrics_source = (SRC / "metrics.py").read_text()
    deployment = objects[("Deployment", "playcast-host-eu-west-1")]
    (host,) = deployment["spec"]["template"]["spec"]["containers"]
    slots, location = _flag(host["command"], "--slots"), _flag(host["command"], "--location")

    scaled = objects[("ScaledObject", "playcast-host-eu-west-1")]
    assert scaled["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                "name": deployment["metadata"]["name"]}
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    query = trigger["metadata"]["query"]
    (metric,) = re.findall(r"playcast_[a-z_]+", query)
    assert f'"{metric}"' in metrics_source, f"{metric} is not a family metrics.py exports"
    assert f'location="{location}"' in query and query.startswith("max(")  # the same on every replica
    assert trigger["metadata"]["threshold"] == slots

    hpa = objects[("HorizontalPodAutoscaler", "playcast-host-eu-west-1")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    (external,) = hpa["spec"]["metrics"]
    adapter = yaml.safe_load(objects[("ConfigMap", "prometheus-adapter")]["data"]["config.yaml"])
    (rule,) = adapter["externalRules"]
    assert rule["name"]["as"] == external["external"]["metric"]["name"]
    assert rule["seriesQuery"].strip("'") == metric and re.fullmatch(rule["name"]["matches"], metric)
    assert external["external"]["metric"]["selector"]["matchLabels"] == {"location": location}
    assert external["external"]["target"] == {"type": "AverageValue", "averageValue": slots}


def test_readme_lists_every_setting_playcast_reads() -> None:
    readme = (REPO / "README.md").read_text()
    config = (SRC / "config.py").read_text() + (SRC / "credentials.py").read_text()
    missing = sorted(n for n in set(re.findall(r"PLAYCAST_[A-Z0-9_]+", config)) if n not in readme)
    assert not missing, f"README's configuration table lacks {missing}"
    assert os.path.exists(REPO / "docs" / "fleet.md")
