"""Offline manifest checks: YAML positions, the strict API schema, and the semantic rules."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from kernel_helpers import manifests as m

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web, tier: front}
    spec:
      containers:
        - name: api
          image: dockyard/api:1
          ports: [{name: http, containerPort: 8000}]
          readinessProbe: {httpGet: {path: /api/version, port: 8000}}
          livenessProbe: {httpGet: {path: /api/version, port: http}}
          resources:
            requests: {cpu: 50m, memory: 16Mi}
            limits: {cpu: "0.2", memory: 64Mi}
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8000}]
"""
GOOD = DEPLOYMENT + "---\n" + SERVICE


def docs(text: str = GOOD) -> list[m.Document]:
    return m.load(text)


def edited(change: Any, text: str = GOOD) -> list[m.Document]:
    """The good file with ``change(objects)`` applied, dumped and loaded again."""
    objects = [copy.deepcopy(d.data) for d in m.load(text)]
    change(objects)
    return m.load(yaml.safe_dump_all(objects, sort_keys=False))


def rules(found: list[m.Problem]) -> list[str]:
    return [p.rule for p in found]


# -- loading ---------------------------------------------------------------------------------


def test_a_good_file_loads_with_kinds_names_and_starting_lines() -> None:
    found = docs()
    assert [(d.kind, d.name, d.index) for d in found] == [("Deployment", "web", 1),
                                                          ("Service", "web", 2)]
    assert found[0].line == 1 and found[1].line == DEPLOYMENT.count("\n") + 2
    assert found[0].label == "Deployment/web"


def test_line_of_a_nested_field_is_where_it_is_written() -> None:
    deployment = docs()[0]
    assert deployment.line_of(["spec", "template", "spec", "containers", 0, "image"]) == 15
    # A missing field reports its nearest parent.
    assert deployment.line_of(["spec", "template", "spec", "nodeSelector"]) == 12


@pytest.mark.parametrize(("text", "line", "column", "words"), [
    ("apiVersion: v1\nkind: Pod\nmetadata: name: x\n", 3, 15, "mapping values"),
    ("apiVersion: v1\nkind: Pod\nspec:\n\tcontainers: []\n", 4, 1, "'\\t'"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: [x}\n", 3, 20, ""),
])
def test_malformed_yaml_names_the_parser_problem_line_and_column(
        text: str, line: int, column: int, words: str) -> None:
    with pytest.raises(m.ManifestError) as caught:
        m.load(text)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert words in caught.value.message
    assert f"line {line}, column {column}" in str(caught.value)


def test_a_duplicate_key_is_an_error_kubectl_would_also_give() -> None:
    text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nmetadata: {name: b}\n"
    with pytest.raises(m.ManifestError, match=r"'metadata' appears twice.*first on line 3") as e:
        m.load(text)
    assert e.value.line == 4


@pytest.mark.parametrize(("text", "words"), [
    ("", "no Kubernetes object"),
    ("# only a comment\n---\n", "no Kubernetes object"),
    ("- a\n- b\n", "is a list"),
    ("kind: Pod\nmetadata: {name: a}\n", "no `apiVersion:`"),
    ("apiVersion: v1\nmetadata: {name: a}\n", "no `kind:`"),
])
def test_documents_that_are_not_objects_are_refused_clearly(text: str, words: str) -> None:
    with pytest.raises(m.ManifestError, match=words):
        m.load(text)


def test_read_reports_a_missing_or_binary_file_as_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(m.ManifestError, match="there is no file"):
        m.read(tmp_path / "nope.yaml")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00kind")
    with pytest.raises(m.ManifestError, match="not UTF-8"):
        m.read(binary)


# -- schema ------------------------------------------------------------------------------------


def test_the_good_file_has_no_schema_or_semantic_problem() -> None:
    found = docs()
    assert m.schema_problems(found) == []
    assert m.semantic_problems(found) == []


def test_strict_schema_catches_a_misspelled_field_and_suggests_the_right_one() -> None:
    found = m.schema_problems(docs(GOOD.replace("readinessProbe", "readynessProbe")))
    assert len(found) == 1
    problem = found[0]
    assert problem.rule == "schema" and problem.label == "Deployment/web"
    assert "'readynessProbe' (did you mean 'readinessProbe'?)" in problem.message
    assert problem.path == "spec.template.spec.containers[0]" and problem.line == 14


def test_a_wrong_type_names_the_field_path_and_line() -> None:
    found = m.schema_problems(docs(GOOD.replace("containerPort: 8000", "containerPort: '8000'")))
    assert [p.path for p in found] == ["spec.template.spec.containers[0].ports[0].containerPort"]
    assert "not of type 'integer'" in found[0].message and found[0].line == 16


def test_an_unknown_api_version_is_a_schema_problem_not_a_crash() -> None:
    found = m.schema_problems(docs(GOOD.replace("apps/v1", "apps/v1beta1")))
    assert rules(found) == ["schema"]
    assert "no kind 'Deployment' in apiVersion 'apps/v1beta1'" in found[0].message


def test_an_unsupported_schema_version_says_how_to_get_it() -> None:
    with pytest.raises(m.SchemaUnavailable, match=r"pip install 'kubernetes-validate>=9\.99'"):
        m.schema_problems(docs(), version="9.99")


# -- semantics ---------------------------------------------------------------------------------


def test_a_selector_that_misses_the_template_labels_is_named_with_both_sides() -> None:
    def change(o: list[dict[str, Any]]) -> None:
        o[0]["spec"]["selector"]["matchLabels"] = {"app": "website"}

    found = m.semantic_problems(edited(change), ["selector"])
    assert len(found) == 1
    assert "(app=website)" in found[0].message and "(app=web, tier=front)" in found[0].message


def test_match_expressions_are_evaluated() -> None:
    assert m.selector_matches({"matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["front", "back"]},
        {"key": "debug", "operator": "DoesNotExist"}]}, {"tier": "front"})
    assert not m.selector_matches({"matchExpressions": [
        {"key": "tier", "operator": "NotIn", "values": ["front"]}]}, {"tier": "front"})
    assert not m.selector_matches({}, {"app": "web"}), "an empty selector selects nothing"


def test_a_service_that_selects_no_template_of_the_file_is_reported() -> None:
    found = m.semantic_problems(docs(GOOD.replace("selector: {app: web}\n  ports",
                                                  "selector: {app: frontend}\n  ports")),
                                ["service"])
    assert len(found) == 1 and found[0].label == "Service/web"
    assert "matches no pod template" in found[0].message
    assert "Deployment/web pods carry app=web, tier=front" in found[0].message


def test_a_service_target_port_must_be_declared_by_number_or_name() -> None:
    wrong = docs(GOOD.replace("targetPort: 8000", "targetPort: 8080"))
    assert "targetPort 8080 is not a port" in m.semantic_problems(wrong, ["service"])[0].message
    named = docs(GOOD.replace("targetPort: 8000", "targetPort: http"))
    assert m.semantic_problems(named, ["service"]) == []
    unnamed = docs(GOOD.replace("targetPort: 8000", "targetPort: web"))
    assert "names no port" in m.semantic_problems(unnamed, ["service"])[0].message


def test_a_service_without_selector_is_reported() -> None:
    def change(o: list[dict[str, Any]]) -> None:
        del o[1]["spec"]["selector"]

    assert "no spec.selector" in m.semantic_problems(edited(change), ["service"])[0].message


def test_missing_probes_are_listed_per_container() -> None:
    def change(o: list[dict[str, Any]]) -> None:
        container = o[0]["spec"]["template"]["spec"]["containers"][0]
        del container["livenessProbe"]
        container["readinessProbe"] = {"periodSeconds": 2}

    found = m.semantic_problems(edited(change), ["probes"])
    assert len(found) == 1
    assert "readinessProbe needs exactly one of httpGet" in found[0].message
    assert "no livenessProbe" in found[0].message


def test_resources_need_all_four_values_and_requests_within_limits() -> None:
    def no_limits(o: list[dict[str, Any]]) -> None:
        del o[0]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]

    found = m.semantic_problems(edited(no_limits), ["resources"])
    assert "sets no limits.cpu, limits.memory" in found[0].message

    def inverted(o: list[dict[str, Any]]) -> None:
        o[0]["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1"

    found = m.semantic_problems(edited(inverted), ["resources"])
    assert "requests more cpu (1) than its limit (0.2)" in found[0].message

    def bad_unit(o: list[dict[str, Any]]) -> None:
        o[0]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = \
            "64MB"

    assert "not a Kubernetes quantity" in m.semantic_problems(edited(bad_unit),
                                                              ["resources"])[0].message


@pytest.mark.parametrize(("value", "expected"), [
    ("250m", Decimal("0.25")), ("0.5", Decimal("0.5")), (2, Decimal(2)),
    ("64Mi", Decimal(64 * 2**20)), ("1G", Decimal(10**9)), ("1e3", Decimal(1000)),
    ("1E", Decimal(10**18)), (".5", Decimal("0.5")),
])
def test_quantities_parse_like_kubernetes(value: Any, expected: Decimal) -> None:
    assert m.parse_quantity(value) == expected


@pytest.mark.parametrize("value", ["64MB", "", "m", "1.2.3", True, None])
def test_things_that_are_not_quantities_are_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        m.parse_quantity(value)


@pytest.mark.parametrize(("image", "bad"), [
    ("dockyard/api:1", False), ("dockyard/api", True), ("dockyard/api:latest", True),
    ("localhost:5000/api", True), ("localhost:5000/api:2", False),
    ("busybox@sha256:" + "a" * 64, False),
])
def test_images_need_a_pinned_tag(image: str, bad: bool) -> None:
    found = m.semantic_problems(docs(GOOD.replace("dockyard/api:1", image)), ["image"])
    assert bool(found) is bad


def test_names_must_be_present_and_valid_for_the_kind() -> None:
    found = m.semantic_problems(docs(GOOD.replace("name: web\nspec:\n  selector",
                                                  "name: Web_1\nspec:\n  selector")), ["names"])
    assert len(found) == 1 and "'Web_1' is not allowed for a Service" in found[0].message


def test_unknown_rule_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown rule"):
        m.semantic_problems(docs(), ["probe"])


def test_semantic_checks_survive_fields_of_the_wrong_type() -> None:
    text = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
            "spec: {selector: 3, template: {spec: {containers: [1, {name: x}]}}}\n")
    found = m.semantic_problems(m.load(text))
    assert {"selector", "probes", "resources", "image"} <= set(rules(found))


def test_problem_text_names_object_line_and_path() -> None:
    problem = m.Problem("probes", 1, "Deployment/web", "spec.x", "no readinessProbe", 12)
    assert str(problem) == "Deployment/web, line 12: spec.x: no readinessProbe"
