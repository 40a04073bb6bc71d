"""deploy/k8s, checked without a cluster: every overlay rendered by ``kubectl kustomize``, its
built-in objects validated against the Kubernetes schemas offline (kubernetes-validate), and what
the manifests say held against the code: settings, commands, probes, and the Redis list KEDA
watches being the queue the workers consume."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import re
import runpy
import shutil
import subprocess
from collections.abc import Iterator
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from inferq import broker, priorities
from inferq.celery_app import make_celery
from inferq.settings import Settings
from launcher import api_command, worker_command
from tests.conftest import REPO

K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("cpu", "gpu")
KUBECTL = shutil.which("kubectl")


def _why_not_render() -> str | None:
    """Why ``kubectl kustomize`` cannot render the overlays here, or None when it can."""
    if KUBECTL is None:
        return "kubectl (with its built-in kustomize) is not installed: apt-get install kubectl"
    answer = subprocess.run([KUBECTL, "version", "--client", "-o", "json"], capture_output=True, text=True,
                            timeout=30)
    version = json.loads(answer.stdout or "{}") if answer.returncode == 0 else {}
    kustomize = version.get("kustomizeVersion", "")
    if not re.match(r"v([5-9]|\d\d)\.", kustomize):
        client = version.get("clientVersion", {}).get("gitVersion", "of unknown version")
        return (f"kubectl {client} has kustomize {kustomize or 'of an older line'}; the overlays need kustomize "
                "v5 (kubectl 1.27 or newer)")
    return None


WHY_NOT_RENDER = _why_not_render()
needs_kubectl = pytest.mark.skipif(WHY_NOT_RENDER is not None, reason=str(WHY_NOT_RENDER))

#: The oldest Kubernetes the manifests are written for (autoscaling/v2, policy/v1, batch/v1
#: CronJob, the restricted pod security level are all older), and the newest schema bundled.
KUBERNETES_VERSIONS = ("1.28", kubernetes_validate.latest_version())
#: Kinds from CRDs, which kubernetes-validate has no schema for: checked field by field below.
CUSTOM_KINDS = {"ScaledObject"}

SETTINGS = {field.name.upper() for field in dataclasses.fields(Settings)}
#: Settings the ConfigMap leaves out, and why.
NOT_IN_CONFIGMAP = {
    "WORKERS": "make up's count of worker processes; the cluster scales pods instead",
    "RUN_DIR": "where make up keeps its embedded Redis; the cluster runs its own",
    "REDIS_APPENDFSYNC": "make up's embedded Redis's; the cluster's Redis has its own --appendfsync",
    "ALLOWED_ORIGINS": "unset: only the API's own origin; set per deployment, where a site of its own posts to it",
    "API_KEY": "a secret: it comes from the Secret inferq-api-key",
    "TENANTS_FILE": "unset: one tenant; set per deployment, with the Secret of tenants mounted as a volume",
    "MODEL_DIR": "the first releases' single-model setting; the cluster serves MODEL_REPOSITORY",
    "WORKER_MODELS": "set per model, in each model's worker Deployment",
    "GRPC_TLS_CERT_FILE": "unset: plaintext inside the cluster; set per deployment, with its Secret mounted",
    "GRPC_TLS_KEY_FILE": "as GRPC_TLS_CERT_FILE",
    "CALLBACK_ALLOWED_URLS": "unset: callbacks refused; set per deployment, to the receivers it trusts",
    "CALLBACK_SECRET": "a secret: set per deployment with CALLBACK_ALLOWED_URLS, from a Secret of its own",
}
#: Variables the manifests may set that are not inferq settings, and why.
OTHER_VARIABLES = {
    "PROMETHEUS_MULTIPROC_DIR": "prometheus_client's; gunicorn.conf.py sets it per server",
    "MPLCONFIGDIR": "matplotlib's cache, under a read-only $HOME otherwise",
}
#: The command the worker liveness, readiness and startup probes run.
WORKER_PROBE = ["python", "-m", "worker.liveness"]


def queues_of(settings: Settings, model: str) -> list[str]:
    """The Celery queues ``model``'s workers take from, which are also the names of their Redis lists:
    one a priority, as the worker declares them."""
    return priorities.queues(settings.model_queue(model))


@functools.cache
def render(overlay: str) -> tuple[dict, ...]:
    result = subprocess.run([KUBECTL, "kustomize", str(K8S / "overlays" / overlay)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@pytest.fixture(params=OVERLAYS)
def overlay(request) -> str:
    if WHY_NOT_RENDER is not None:
        pytest.skip(WHY_NOT_RENDER)
    return request.param


@pytest.fixture
def objects(overlay) -> tuple[dict, ...]:
    return render(overlay)


def of_kind(objects, kind: str) -> list[dict]:
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects, kind: str, name: str) -> dict:
    found = [obj for obj in of_kind(objects, kind) if obj["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def pod_templates(objects) -> Iterator[tuple[str, dict]]:
    """``(kind/name, pod template)`` of every object that runs pods."""
    for obj in objects:
        spec = obj.get("spec", {})
        if obj["kind"] == "CronJob":
            template = spec["jobTemplate"]["spec"]["template"]
        elif obj["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
            template = spec["template"]
        else:
            continue
        yield f"{obj['kind']}/{obj['metadata']['name']}", template


def containers(pod: dict) -> list[dict]:
    return [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]


def settings_map(objects) -> dict:
    (config_map,) = of_kind(objects, "ConfigMap")
    return config_map["data"]


def cluster_settings(objects) -> Settings:
    return Settings.from_env(settings_map(objects))


def runs_inferq(container: dict) -> bool:
    """Whether the container runs the project's image (whichever registry it was pushed to)."""
    return container["image"].rsplit("/", 1)[-1].startswith("inferq")


def uses_settings(container: dict) -> bool:
    return any("configMapRef" in source for source in container.get("envFrom", []))


def worker_deployments(objects) -> list[dict]:
    return [obj for obj in of_kind(objects, "Deployment") if obj["metadata"]["labels"].get("inferq.io/model")]


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]


# --- the schema -------------------------------------------------------------------------------

@needs_kubectl
def test_every_built_in_object_is_valid_for_kubernetes(objects):
    errors = []
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
                errors.append(f"{obj['kind']}/{obj['metadata']['name']} on {version}: {exc}")
    assert not errors, "\n".join(errors)
    assert {obj["kind"] for obj in objects} & CUSTOM_KINDS == CUSTOM_KINDS


@needs_kubectl
def test_the_schema_check_catches_what_a_cluster_would_refuse():
    """The validation above is not vacuous: a misspelt field and a mistyped value fail it."""
    deployment = named(render("cpu"), "Deployment", "inferq-api")
    misspelt = json.loads(json.dumps(deployment))
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    mistyped = json.loads(json.dumps(deployment))
    mistyped["spec"]["replicas"] = "two"
    for broken in (misspelt, mistyped):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


# --- settings -------------------------------------------------------------------------------

def test_one_config_map_holds_every_setting_that_matters(objects):
    assert len(of_kind(objects, "ConfigMap")) == 1
    keys = set(settings_map(objects))
    assert keys <= SETTINGS, f"not settings: {keys - SETTINGS}"
    assert keys | set(NOT_IN_CONFIGMAP) == SETTINGS, (
        f"settings neither in the ConfigMap nor in NOT_IN_CONFIGMAP: {SETTINGS - keys - set(NOT_IN_CONFIGMAP)}")
    assert not keys & set(NOT_IN_CONFIGMAP)
    cluster_settings(objects)  # every value is one its setting takes (SettingsError otherwise)


def test_the_config_map_agrees_with_compose_where_both_set_a_value(objects):
    data = settings_map(objects)
    for name, value in COMPOSE["api"]["environment"].items():
        default = re.fullmatch(r"\$\{\w+:-(.*)\}", str(value))
        value = default.group(1) if default else str(value)
        if name == "REDIS_URL" or name in NOT_IN_CONFIGMAP:  # another address; set per deployment
            continue
        assert data[name] == value, name


def test_every_inferq_container_reads_the_settings_and_only_real_variables(objects):
    (config_map,) = of_kind(objects, "ConfigMap")
    allowed = SETTINGS | set(OTHER_VARIABLES)
    for owner, pod in pod_templates(objects):
        for container in containers(pod):
            if not runs_inferq(container):
                continue
            sources = container.get("envFrom", [])
            assert [source["configMapRef"]["name"] for source in sources] == [config_map["metadata"]["name"]], owner
            for variable in container.get("env", []):
                assert variable["name"] in allowed, f"{owner}: {variable['name']} is not an inferq setting"
                if variable["name"] == "API_KEY":
                    assert "value" not in variable and variable["valueFrom"]["secretKeyRef"]["key"] == "API_KEY"


def test_the_api_key_comes_from_a_secret_and_is_not_optional(objects):
    api = named(objects, "Deployment", "inferq-api")["spec"]["template"]
    (variable,) = [v for v in api["spec"]["containers"][0]["env"] if v["name"] == "API_KEY"]
    reference = variable["valueFrom"]["secretKeyRef"]
    assert reference["name"] == "inferq-api-key" and not reference.get("optional", False)
    # The Secret is created by hand (docs/kubernetes.md): a committed one would publish the key.
    assert not of_kind(objects, "Secret")


# --- commands ---------------------------------------------------------------------------------

def test_the_api_and_trainer_run_what_compose_and_the_launcher_run(objects):
    api = named(objects, "Deployment", "inferq-api")["spec"]["template"]["spec"]["containers"][0]
    assert api["command"] == COMPOSE["api"]["command"]
    assert api["command"][1:] == api_command()[1:]
    for kind in ("Job", "CronJob"):
        trainer = dict(pod_templates([named(objects, kind, "inferq-trainer")]))[f"{kind}/inferq-trainer"]
        assert trainer["spec"]["containers"][0]["command"] == COMPOSE["trainer"]["command"]


def test_workers_run_what_compose_runs_on_their_models_queue(objects):
    settings = cluster_settings(objects)
    launcher = worker_command(settings, 0)
    launcher_flags = {arg for arg in launcher if arg.startswith("--")} - {"--hostname"}
    deployments = worker_deployments(objects)
    assert {d["metadata"]["labels"]["inferq.io/model"] for d in deployments} == {settings.model_name}
    for deployment in deployments:
        model = deployment["metadata"]["labels"]["inferq.io/model"]
        command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
        # No --queues: the worker takes every queue the Celery app declares, interactive ones first.
        assert "--queues" not in command and model == settings.model_name
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        environment = {item["name"]: item["value"] for item in container.get("env", [])}
        assert environment.get("WORKER_MODELS") == model, "each model's Deployment serves that model alone"
        assert command == COMPOSE["worker"]["command"]
        assert {arg for arg in command if arg.startswith("--")} == launcher_flags
        assert option(command, "--pool") == option(launcher, "--pool")


def test_flower_and_redis_run_what_compose_runs(objects):
    flower = named(objects, "Deployment", "flower")["spec"]["template"]["spec"]["containers"][0]
    compose = COMPOSE["flower"]["command"]
    assert flower["command"] == [*compose[:2], "$(REDIS_URL)", *compose[3:]]
    redis_container = named(objects, "StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]
    assert f"${{REDIS_IMAGE:-{redis_container['image']}}}" == COMPOSE["redis"]["image"]
    # Persistence as compose's; the memory limit is each one's own (a pod's limit is not a host's).
    persistence = COMPOSE["redis"]["command"][:COMPOSE["redis"]["command"].index("--maxmemory")]
    assert redis_container["command"][:len(persistence)] == persistence


def test_the_modules_the_pods_run_exist():
    for module in ("worker.main", "worker.liveness", "trainer.__main__", "api"):
        assert importlib.util.find_spec(module) is not None, module
    assert (REPO / "config" / "gunicorn.conf.py").is_file() and (REPO / "config" / "model.json").is_file()


# --- the queue KEDA watches -----------------------------------------------------------------

def test_each_worker_deployment_is_scaled_by_keda_on_its_queues_redis_list(objects):
    settings = cluster_settings(objects)
    redis_url = urlsplit(settings.redis_url)
    deployments = {d["metadata"]["name"]: d for d in worker_deployments(objects)}
    scaled = of_kind(objects, "ScaledObject")
    assert sorted(s["spec"]["scaleTargetRef"]["name"] for s in scaled) == sorted(deployments)
    for scaled_object in scaled:
        assert scaled_object["apiVersion"] == "keda.sh/v1alpha1"
        spec = scaled_object["spec"]
        target = spec["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment" and target.get("apiVersion", "apps/v1") == "apps/v1"
        deployment = deployments[target["name"]]
        assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
        model = deployment["metadata"]["labels"]["inferq.io/model"]
        command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        assert "--queues" not in command
        assert [trigger["type"] for trigger in spec["triggers"]] == ["redis"] * len(spec["triggers"])
        queues = queues_of(settings, model)
        # The messages waiting in each queue, every tenant's (tests/integration/test_fair_share.py
        # holds the backlog to that), and the work in flight from each (a dead worker's too):
        # nothing waits on luck.
        assert [trigger["metadata"]["listName"] for trigger in spec["triggers"]] == [
            *map(broker.backlog, queues), *map(broker.inflight, queues)]
        held_by_one_worker = make_celery(settings).conf.worker_prefetch_multiplier
        for trigger in spec["triggers"][len(queues):]:
            assert int(trigger["metadata"]["listLength"]) >= held_by_one_worker, (
                "a worker's own unacknowledged messages must not ask for more workers")
        for trigger in spec["triggers"]:
            metadata = trigger["metadata"]
            assert int(metadata["listLength"]) > 0
            # KEDA reads the list from Redis itself, at the address the app's REDIS_URL names.
            assert metadata["address"] == f"{redis_url.hostname}:{redis_url.port}"
            assert int(metadata.get("databaseIndex", "0")) == int(redis_url.path.lstrip("/") or 0)
            assert metadata.get("enableTLS", "false") == str(redis_url.scheme == "rediss").lower()


def render_with_tenants(overlay: str, tmp_path) -> tuple[dict, ...]:
    """``overlay`` with the tenants component, as a deployment's own overlay adds it."""
    k8s = os.path.relpath(K8S, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": [f"{k8s}/overlays/{overlay}"], "components": [f"{k8s}/components/tenants"]}))
    result = subprocess.run([KUBECTL, "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def test_the_tenants_component_mounts_the_tenants_secret_as_a_volume_in_both_api_containers(overlay, tmp_path):
    plain = render(overlay)
    objects = render_with_tenants(overlay, tmp_path)
    api = named(objects, "Deployment", "inferq-api")["spec"]["template"]["spec"]
    (volume,) = [v for v in api["volumes"] if v["name"] == "tenants"]
    # Required, as API_KEY's Secret is: without it the pods wait rather than serve one tenant.
    assert volume["secret"]["secretName"] == "inferq-tenants" and not volume["secret"].get("optional", False)
    assert not volume["secret"].get("items"), "the file keeps its key's name, tenants.json"
    for container in api["containers"]:
        (path,) = [v["value"] for v in container["env"] if v["name"] == "TENANTS_FILE"]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tenants"]
        # A whole-volume mount, which kubelet updates in place; a subPath one is never updated.
        assert "subPath" not in mount and mount["readOnly"]
        assert os.path.dirname(path) == mount["mountPath"] and os.path.basename(path) == "tenants.json"
        assert Settings.from_env({**settings_map(objects), "TENANTS_FILE": path}).tenants_file == path
    assert {c["name"] for c in api["containers"]} == {"api", "grpc"}
    # Nothing else changes, and no Secret is committed: each deployment creates its own.
    assert not of_kind(objects, "Secret")
    assert [obj for obj in objects if obj["metadata"]["name"] != "inferq-api"] == [
        obj for obj in plain if obj["metadata"]["name"] != "inferq-api"]
    # Without the component, one tenant: no TENANTS_FILE anywhere.
    for _, pod in pod_templates(plain):
        assert all(v["name"] != "TENANTS_FILE" for c in containers(pod) for v in c.get("env", []))
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(named(objects, "Deployment", "inferq-api"), version, strict=True)


def test_the_redis_address_reaches_the_redis_service_from_another_namespace(objects):
    """KEDA's operator resolves the trigger's address from its own namespace."""
    host = urlsplit(cluster_settings(objects).redis_url).hostname
    service, namespace, *rest = host.split(".")
    assert rest in (["svc"], ["svc", "cluster", "local"]), host
    named(objects, "Service", service)
    assert namespace == named(objects, "Service", service)["metadata"]["namespace"]
    port = urlsplit(cluster_settings(objects).redis_url).port
    assert [p["port"] for p in named(objects, "Service", service)["spec"]["ports"]] == [port]


def test_a_celery_queue_is_a_redis_list_of_the_same_name():
    """KEDA counts the list named after the queue: kombu's Redis transport appends a priority
    suffix for other priority levels, and a prefix when one is configured."""
    options = make_celery(Settings()).conf.broker_transport_options
    assert options["priority_steps"] == [0]
    assert not options.get("global_keyprefix")


def test_workers_scale_from_zero_and_the_api_is_ready_without_them(objects, make_app):
    """At zero workers a readiness that needs one would drop every API pod from the Service, and
    nothing could be queued to wake a worker: the API's probe asks for Redis alone."""
    api = named(objects, "Deployment", "inferq-api")["spec"]["template"]["spec"]["containers"][0]
    probe = api["readinessProbe"]["httpGet"]["path"]
    app, _ = make_app()  # no worker has a heartbeat here
    client = app.test_client()
    assert client.get("/readyz").status_code == 503
    assert client.get(probe).status_code == 200, probe
    assert [s["spec"]["minReplicaCount"] for s in of_kind(objects, "ScaledObject")] == [0]


# --- probes, grace periods ------------------------------------------------------------------

def test_the_api_probes_are_healthz_and_readyz_on_its_port(objects):
    routes = json.loads((REPO / "api" / "openapi.json").read_text())["paths"]
    api = named(objects, "Deployment", "inferq-api")["spec"]["template"]["spec"]["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in api["ports"]}
    port = cluster_settings(objects).port
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert api[probe]["httpGet"]["path"].split("?")[0] == path and path in routes
        assert ports[api[probe]["httpGet"]["port"]] == port


def test_worker_probes_read_the_workers_heartbeat(objects):
    for deployment in worker_deployments(objects):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["exec"]["command"] == WORKER_PROBE, probe
        # Before its first heartbeat a worker loads TensorFlow and waits for a model.
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


def test_workers_have_time_to_drain_on_sigterm(objects):
    settings = cluster_settings(objects)
    compose_grace = int(COMPOSE["worker"]["stop_grace_period"].removesuffix("s"))
    for deployment in worker_deployments(objects):
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace == compose_grace
        # Stopping the heartbeat thread alone may take HEARTBEAT_INTERVAL_S + 5 s (worker.heartbeat).
        assert grace > settings.heartbeat_interval_s + 5 + 30


def test_the_api_has_time_to_answer_requests_in_flight(objects, monkeypatch):
    """terminationGracePeriodSeconds covers the preStop pause and gunicorn's graceful_timeout, as
    config/gunicorn.conf.py computes it from the cluster's settings."""
    for name, value in settings_map(objects).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # restored after: gunicorn.conf.py sets it
    conf = runpy.run_path(str(REPO / "config" / "gunicorn.conf.py"))
    conf["on_exit"](None)
    pod = named(objects, "Deployment", "inferq-api")["spec"]["template"]["spec"]
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + conf["graceful_timeout"] + 5
    assert conf["bind"].endswith(f":{cluster_settings(objects).port}")


# --- security and resources -------------------------------------------------------------------

def image_uid() -> int:
    return int(re.search(r"useradd .*--uid (\d+)", (REPO / "Dockerfile").read_text()).group(1))


def test_every_container_runs_non_root_read_only_without_capabilities(objects):
    for owner, pod in pod_templates(objects):
        spec = pod["spec"]
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] != 0, owner
        assert context["seccompProfile"]["type"] == "RuntimeDefault", owner
        assert spec["automountServiceAccountToken"] is False, owner
        for container in containers(pod):
            where = f"{owner} {container['name']}"
            assert container.get("securityContext", {}).get("runAsUser", context["runAsUser"]) != 0, where
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"] and not security["capabilities"].get("add"), where
            assert security["readOnlyRootFilesystem"] is True, where
            if runs_inferq(container):
                # The image's own user: it owns nothing else, and runAsNonRoot cannot check a name.
                assert context["runAsUser"] == image_uid(), where


def test_the_namespace_enforces_the_restricted_pod_security_level(objects):
    (namespace,) = of_kind(objects, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {obj["metadata"].get("namespace") for obj in objects if obj["kind"] != "Namespace"} == {
        namespace["metadata"]["name"]}


def test_every_container_states_its_resources(objects):
    for owner, pod in pod_templates(objects):
        for container in containers(pod):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), f"{owner} {container['name']}"
            assert "memory" in resources["limits"], f"{owner} {container['name']}"


def test_writable_paths_are_volumes(objects):
    """The root filesystem is read-only: /tmp, the model repository for the trainer and the MNIST
    files are mounted; workers only read the models, from the same claim the trainer writes."""
    settings = cluster_settings(objects)
    claims = {}
    for owner, pod in pod_templates(objects):
        volumes = {volume["name"]: volume for volume in pod["spec"].get("volumes", [])}
        for container in containers(pod):
            if not runs_inferq(container):
                continue
            mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]["name"]], owner
            if "trainer" in owner:
                for path in (settings.repository_root, settings.mnist_data_dir):
                    assert not mounts[path].get("readOnly"), owner
                claims[owner] = volumes[mounts[settings.repository_root]["name"]]["persistentVolumeClaim"]["claimName"]
            elif "worker" in owner:
                assert mounts[settings.repository_root]["readOnly"] is True, owner
                claims[owner] = volumes[mounts[settings.repository_root]["name"]]["persistentVolumeClaim"]["claimName"]
    workers = {f"Deployment/{d['metadata']['name']}" for d in worker_deployments(objects)}
    assert set(claims) == {"Job/inferq-trainer", "CronJob/inferq-trainer", *workers}
    assert len(set(claims.values())) == 1, claims
    models = named(objects, "PersistentVolumeClaim", next(iter(claims.values())))
    assert models["spec"]["accessModes"] == ["ReadWriteMany"]


def test_redis_refuses_new_work_well_before_its_container_limit_and_evicts_nothing(objects):
    (container,) = named(objects, "StatefulSet", "redis")["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert option(command, "--maxmemory-policy") == "noeviction"
    maxmemory = option(command, "--maxmemory")
    assert maxmemory.endswith("mb"), maxmemory  # Redis's mb: MiB
    limit = container["resources"]["limits"]["memory"]
    assert limit.endswith("Gi") or limit.endswith("Mi"), limit
    limit_mib = int(limit[:-2]) * (1024 if limit.endswith("Gi") else 1)
    # Room for an AOF rewrite's copy-on-write pages, fragmentation and buffers.
    assert int(maxmemory[:-2]) <= 0.75 * limit_mib


def test_redis_keeps_an_append_only_file_on_its_volume(objects):
    statefulset = named(objects, "StatefulSet", "redis")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert option(command, "--appendonly") == "yes"
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == option(command, "--dir")


def test_gpu_workers_request_a_gpu_on_gpu_nodes_with_the_gpu_image(objects, overlay):
    gpus = {owner: container["resources"]["limits"].get("nvidia.com/gpu")
            for owner, pod in pod_templates(objects) for container in containers(pod)}
    workers = {f"Deployment/{d['metadata']['name']}" for d in worker_deployments(objects)}
    api_image = named(objects, "Deployment", "inferq-api")["spec"]["template"]["spec"]["containers"][0]["image"]
    if overlay == "cpu":
        assert not any(gpus.values()), gpus
        return
    assert {owner for owner, count in gpus.items() if count} == workers
    assert all(gpus[owner] == 1 for owner in workers)
    for deployment in worker_deployments(objects):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
        image = pod["containers"][0]["image"]
        assert image != api_image
    # The GPU image is the one built with the gpu extra (docker-compose.yml's worker-gpu, tagged gpu).
    assert COMPOSE["worker-gpu"]["build"]["args"]["EXTRAS"].startswith("gpu")


# --- scaling and disruption -------------------------------------------------------------------

def test_the_api_scales_on_cpu(objects):
    (hpa,) = of_kind(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "inferq-api"}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    api = named(objects, "Deployment", "inferq-api")
    assert "replicas" not in api["spec"], "the HorizontalPodAutoscaler owns the replica count"


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_api_and_workers_have_disruption_budgets(objects):
    budgets = of_kind(objects, "PodDisruptionBudget")
    for deployment in [named(objects, "Deployment", "inferq-api"), *worker_deployments(objects)]:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if matches(b["spec"]["selector"]["matchLabels"], labels)]
        assert len(covering) == 1, deployment["metadata"]["name"]
    hpa_min = of_kind(objects, "HorizontalPodAutoscaler")[0]["spec"]["minReplicas"]
    assert named(objects, "PodDisruptionBudget", "inferq-api")["spec"]["minAvailable"] < hpa_min


def test_services_select_pods_and_name_their_ports(objects):
    templates = dict(pod_templates(objects))
    for service in of_kind(objects, "Service"):
        pods = [pod for pod in templates.values() if matches(service["spec"]["selector"], pod["metadata"]["labels"])]
        assert pods, service["metadata"]["name"]
        names = {port["name"] for pod in pods for c in containers(pod) for port in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, service["metadata"]["name"]


def test_every_redis_client_is_let_through_the_network_policy_and_keda_too(objects):
    (policy,) = of_kind(objects, "NetworkPolicy")
    redis_labels = named(objects, "StatefulSet", "redis")["spec"]["template"]["metadata"]["labels"]
    assert matches(policy["spec"]["podSelector"]["matchLabels"], redis_labels)
    (rule,) = policy["spec"]["ingress"]
    pod_selectors = [peer["podSelector"]["matchLabels"] for peer in rule["from"] if "podSelector" in peer]
    for owner, pod in pod_templates(objects):
        if any(uses_settings(container) for container in containers(pod)):
            assert any(matches(selector, pod["metadata"]["labels"]) for selector in pod_selectors), owner
    namespaces = [peer["namespaceSelector"]["matchLabels"] for peer in rule["from"] if "namespaceSelector" in peer]
    assert {"kubernetes.io/metadata.name": "keda"} in namespaces


def test_the_trainer_job_and_cronjob_run_the_same_pod(objects):
    job = named(objects, "Job", "inferq-trainer")["spec"]["template"]
    cron = named(objects, "CronJob", "inferq-trainer")["spec"]
    assert cron["jobTemplate"]["spec"]["template"] == job
    assert cron["concurrencyPolicy"] == "Forbid"
    assert job["spec"]["restartPolicy"] == "Never"


def test_the_grpc_front_end_runs_beside_the_api_probed_over_grpc_health(objects):
    pod = named(objects, "Deployment", "inferq-api")["spec"]["template"]["spec"]
    (grpc,) = [container for container in pod["containers"] if container["name"] == "grpc"]
    assert grpc["command"] == COMPOSE["grpc"]["command"] == ["python", "-m", "api.grpc"]
    assert importlib.util.find_spec("api.grpc.__main__") is not None
    port = cluster_settings(objects).grpc_port
    metrics_port = cluster_settings(objects).grpc_metrics_port
    assert {p["name"]: p["containerPort"] for p in grpc["ports"]} == {"grpc": port, "grpc-metrics": metrics_port}
    assert grpc["readinessProbe"]["grpc"] == {"port": port, "service": "inference.GRPCInferenceService"}
    assert grpc["livenessProbe"]["grpc"] == {"port": port}
    from api.grpc.health import INFERENCE, SERVER
    assert (INFERENCE, SERVER) == ("inference.GRPCInferenceService", "")
    (variable,) = [v for v in grpc["env"] if v["name"] == "API_KEY"]
    assert variable["valueFrom"]["secretKeyRef"]["name"] == "inferq-api-key"
    service = named(objects, "Service", "inferq-api")
    assert {"name": "grpc", "port": port, "targetPort": "grpc", "appProtocol": "kubernetes.io/h2c"} in \
        service["spec"]["ports"]
    assert {"name": "grpc-metrics", "port": metrics_port, "targetPort": "grpc-metrics"} in service["spec"]["ports"]
