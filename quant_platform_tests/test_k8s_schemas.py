"""docker/k8s/ validated against real schemas, offline (origins: quant_platform_tests/schemas/SOURCES.md).

- Core kinds (ingest-workers.yaml, ingress.yaml, networkpolicies.yaml): kubernetes-validate's bundled OpenAPI
  JSON schemas, strict (unknown fields are errors), for the oldest Kubernetes docker/k8s/README.md supports
  (1.27) and the newest the package bundles.
- KEDA ScaledObject (keda-scaledobjects.yaml): the openAPIV3Schema of KEDA's own CRD, made strict the way
  `kubectl apply --validate=strict` treats it (unknown fields are errors, not pruned).
- dagster-values.yaml: the Dagster chart's values.schema.json. Helm validates the chart defaults merged with these
  values; the defaults are not vendored here, so `required` is not enforced, everything else is (unknown keys
  where the chart forbids them, types, enums, the Kubernetes objects inside, via the strict definitions).
- nats-values.yaml: the NATS chart (nats-io/k8s helm/charts/nats) publishes no values.schema.json, so it keeps
  the structural checks of test_docker_static.py.

Every test also feeds a deliberately broken copy and asserts that it is rejected.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import referencing
import referencing.jsonschema
import yaml

from quant_platform_tests.conftest import REPO_ROOT

K8S = REPO_ROOT / "docker" / "k8s"
SCHEMAS = Path(__file__).parent / "schemas"
MIN_K8S = "1.27.0"  # docker/k8s/README.md: "Kubernetes 1.27+"
K8S_VERSIONS = [MIN_K8S, kubernetes_validate.latest_version()]  # "1.37.0" with kubernetes-validate 1.37
CORE_FILES = ["ingest-workers.yaml", "ingress.yaml", "networkpolicies.yaml"]


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _k8s_validate(doc: dict, version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_core_manifests_validate_against_kubernetes_schemas(version):
    docs = [(name, d) for name in CORE_FILES for d in _docs(name)]
    assert {d["kind"] for _, d in docs} >= {"ConfigMap", "PersistentVolumeClaim", "Job", "Deployment", "Ingress",
                                            "NetworkPolicy"}
    for name, doc in docs:
        try:
            _k8s_validate(doc, version)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{name} {doc['kind']}/{doc['metadata']['name']} (k8s {version}): {e.message} at "
                        f"{'.'.join(map(str, e.path))}")
    # The check bites: an unknown field, a wrong type and a missing required field are each rejected.
    deployment = next(d for _, d in docs if d["kind"] == "Deployment")
    unknown = copy.deepcopy(deployment)
    unknown["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    missing = copy.deepcopy(deployment)
    del missing["spec"]["template"]["spec"]["containers"][0]["name"]
    for broken in (unknown, wrong_type, missing):
        with pytest.raises(kubernetes_validate.ValidationError):
            _k8s_validate(broken, version)


def _strict(schema: dict) -> dict:
    """Objects with declared properties and no other allowance reject unknown fields (kubectl --validate=strict)."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return schema


@functools.cache
def _scaledobject_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMAS / "keda-scaledobject-v1alpha1.schema.json").read_text())
    schema.pop("$comment")
    return jsonschema.Draft7Validator(_strict(schema))


def _errors(validator, doc) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_keda_scaledobjects_validate_against_keda_crd_schema():
    validator = _scaledobject_validator()
    docs = _docs("keda-scaledobjects.yaml")
    assert docs and all(d["apiVersion"] == "keda.sh/v1alpha1" and d["kind"] == "ScaledObject" for d in docs)
    for doc in docs:
        assert not _errors(validator, doc), (doc["metadata"]["name"], _errors(validator, doc))
    broken = copy.deepcopy(docs[0])
    broken["spec"]["minReplicaCount"] = "1"          # int32 in the CRD
    broken["spec"]["triggers"][0]["metadataa"] = {}  # unknown field
    del broken["spec"]["scaleTargetRef"]["name"]     # required
    errors = _errors(validator, broken)
    assert len(errors) == 3, errors


class _NotRequired:
    """Draft 7 without `required`: the values are an override merged onto the chart's defaults by Helm."""

    validator = jsonschema.validators.extend(jsonschema.Draft7Validator, {"required": lambda *a: iter(())})


@functools.cache
def _dagster_values_validator() -> jsonschema.protocols.Validator:
    """The chart schema's external $refs (kubernetesjsonschema.dev v1.18.0 definitions, not reachable offline) are
    served by kubernetes-validate's strict definitions of the newest bundled Kubernetes."""
    schema = json.loads((SCHEMAS / "dagster-values.schema.json").read_text())
    bundled = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    defs = json.loads((bundled / f"v{K8S_VERSIONS[-1]}-local-strict" / "_definitions.json").read_text())["$defs"]
    k8s_defs = referencing.Resource(contents={"definitions": defs, "$defs": defs},
                                    specification=referencing.jsonschema.DRAFT7)

    def retrieve(uri: str):
        if uri.startswith("https://kubernetesjsonschema.dev/") and uri.endswith("/_definitions.json"):
            return k8s_defs
        raise referencing.exceptions.NoSuchResource(ref=uri)

    return _NotRequired.validator(schema, registry=referencing.Registry(retrieve=retrieve))


def test_dagster_helm_values_validate_against_chart_schema():
    validator = _dagster_values_validator()
    values = yaml.safe_load((K8S / "dagster-values.yaml").read_text())
    assert not _errors(validator, values), _errors(validator, values)
    broken = copy.deepcopy(values)
    broken["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfigg"] = {}           # unknown key
    broken["dagsterDaemon"]["runCoordinator"]["type"] = "FifoRunCoordinator"          # not in the enum
    broken["dagster-user-deployments"]["deployments"][0]["volumes"][0]["persistentVolumeClaim"]["claimNam"] = "x"
    errors = _errors(validator, broken)
    assert len(errors) == 3, errors
