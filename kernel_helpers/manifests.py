"""Offline checks of Kubernetes manifests: YAML, the API schema, and the usual mistakes.

No cluster is needed, so these checks also grade on Binder. Three steps, each usable alone:

1. :func:`load` / :func:`read` parse a (multi-document) YAML file into
   :class:`Document` objects, or raise :class:`ManifestError` with the parser's own
   message and the 1-based line and column where it stopped, as ``kubectl`` would.
2. :func:`schema_problems` validates every object against the Kubernetes OpenAPI
   schema of a pinned version with ``kubernetes-validate`` in strict mode, so a
   misspelled field (``readynessProbe``) is an error, not silently dropped
   (``kubectl apply --dry-run=server --validate=strict`` does the same on a cluster).
3. :func:`semantic_problems` finds what the schema cannot: a selector that does not
   match its own pod template, a Service that selects no pods of the file or targets
   a port they do not declare, missing probes, missing requests and limits, an
   unpinned image.

Every problem is a :class:`Problem` that names its rule, object, field path and line::

    documents = manifests.read(Path("web.yaml"))
    for problem in manifests.schema_problems(documents) + manifests.semantic_problems(documents):
        print(problem)      # Deployment/web, line 12: spec.template...: no readinessProbe
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml

#: The Kubernetes version whose API schema manifests are checked against (``kind``'s
#: node images of recent releases are 1.30 or newer; the fields the labs use exist there).
SCHEMA_VERSION = "1.30"

#: Rules :func:`semantic_problems` knows, in the order it reports them.
RULES = ("names", "selector", "service", "probes", "resources", "image")

#: Workloads that keep pods running (probes make sense) and own them by a selector.
LONG_RUNNING = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet")
#: Where each pod-bearing kind keeps its pod template.
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    **{kind: ("spec", "template") for kind in (*LONG_RUNNING, "Job")},
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
PROBE_HANDLERS = ("httpGet", "tcpSocket", "exec", "grpc")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


class ManifestError(ValueError):
    """The text is not a list of Kubernetes objects: bad YAML, or a document that is no object.

    ``line`` and ``column`` are 1-based (0 when unknown); ``document`` is the 1-based
    position of the YAML document the problem is in (0 when unknown).
    """

    def __init__(self, message: str, line: int = 0, column: int = 0, document: int = 0) -> None:
        super().__init__(message)
        self.message, self.line, self.column, self.document = message, line, column, document

    @property
    def where(self) -> str:
        """`` (line 3, column 7)``, or an empty string when the position is unknown."""
        if not self.line:
            return ""
        return f" (line {self.line}, column {self.column})" if self.column else \
            f" (line {self.line})"

    def __str__(self) -> str:
        return self.message + self.where


class SchemaUnavailable(RuntimeError):
    """The installed ``kubernetes-validate`` has no schema for :data:`SCHEMA_VERSION`."""


@dataclass(frozen=True)
class Document:
    """One object of a manifest file: its data, its position, and its YAML nodes."""

    index: int
    data: dict[str, Any]
    line: int
    node: Any = field(default=None, repr=False, compare=False)

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))

    @property
    def name(self) -> str:
        meta = self.data.get("metadata")
        return str(meta.get("name", "")) if isinstance(meta, Mapping) else ""

    @property
    def label(self) -> str:
        """``Deployment/web``, as ``kubectl`` names an object."""
        return f"{self.kind}/{self.name or '(no name)'}"

    def line_of(self, path: Iterable[str | int]) -> int:
        """The line of the field at ``path`` (or of its nearest existing parent)."""
        node = self.node
        line = self.line
        for step in path:
            found = _child(node, step)
            if found is None:
                break
            node, line = found
        return line


@dataclass(frozen=True)
class Problem:
    """Something wrong with one object: ``rule`` says which check found it."""

    rule: str
    document: int
    label: str
    path: str
    message: str
    line: int = 0

    def __str__(self) -> str:
        where = f", line {self.line}" if self.line else ""
        at = f" {self.path}:" if self.path else ""
        return f"{self.label}{where}:{at} {self.message}"


def _child(node: Any, step: str | int) -> tuple[Any, int] | None:
    """The node at ``step`` below ``node``, and its line (a mapping entry's is its key's)."""
    import yaml

    if isinstance(node, yaml.MappingNode) and isinstance(step, str):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == step:
                return value, key.start_mark.line + 1
    if isinstance(node, yaml.SequenceNode) and isinstance(step, int) and \
            0 <= step < len(node.value):
        item = node.value[step]
        return item, item.start_mark.line + 1
    return None


def _mark_error(exc: yaml.MarkedYAMLError, document: int = 0) -> ManifestError:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    problem = exc.problem or exc.context or "not valid YAML"
    if exc.context and exc.problem:
        problem = f"{exc.problem} ({exc.context})"
    return ManifestError(str(problem), line, column, document)


def _duplicate_keys(node: Any, document: int) -> None:
    """PyYAML keeps the last of two equal keys; kubectl refuses the file. So do we."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise ManifestError(
                        f"the key '{key.value}' appears twice in the same mapping (first on "
                        f"line {seen[key.value]}); only one of them would count",
                        key.start_mark.line + 1, key.start_mark.column + 1, document)
                seen[key.value] = key.start_mark.line + 1
            _duplicate_keys(value, document)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _duplicate_keys(item, document)


def load(text: str) -> list[Document]:
    """Parse a manifest file's text (``---`` separates objects); empty documents are skipped.

    Raises :class:`ManifestError` for YAML syntax errors, duplicate keys, a document that
    is not a mapping, or an object without ``apiVersion`` or ``kind``.
    """
    import yaml

    documents: list[Document] = []
    loader = yaml.SafeLoader(text)
    index = 0
    try:
        while True:
            try:
                if not loader.check_node():
                    break
                index += 1
                node = loader.get_node()
                data = loader.construct_document(node) if node is not None else None
            except yaml.MarkedYAMLError as exc:
                raise _mark_error(exc, index) from None
            except yaml.YAMLError as exc:
                raise ManifestError(str(exc).splitlines()[0], document=index) from None
            if node is None or data is None:
                continue
            line, column = node.start_mark.line + 1, node.start_mark.column + 1
            if not isinstance(data, dict):
                raise ManifestError(
                    f"document {index} is a {type(data).__name__}, but a Kubernetes object is "
                    "a mapping (keys like `apiVersion:`, `kind:`, `metadata:`)",
                    line, column, index)
            _duplicate_keys(node, index)
            for key in ("apiVersion", "kind"):
                if not isinstance(data.get(key), str) or not data.get(key):
                    raise ManifestError(
                        f"document {index} has no `{key}:`, so Kubernetes cannot tell what "
                        "kind of object it is (a Deployment is `apiVersion: apps/v1`, a "
                        "Service `apiVersion: v1`)", line, column, index)
            documents.append(Document(index, data, line, node))
    finally:
        loader.dispose()
    if not documents:
        raise ManifestError("the file holds no Kubernetes object (it is empty or only comments)")
    return documents


def read(path: Path) -> list[Document]:
    """:func:`load` the file at ``path``; an unreadable file is a :class:`ManifestError` too."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"there is no file {path}") from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") \
            from None
    except OSError as exc:
        raise ManifestError(f"{path} could not be read: {exc.strerror or exc}") from None
    return load(text)


# -- the API schema ---------------------------------------------------------------------------


def schema_problems(
    documents: Sequence[Document], version: str = SCHEMA_VERSION, *, strict: bool = True
) -> list[Problem]:
    """Validate each object against Kubernetes ``version``'s schema (``kubernetes-validate``).

    Strict mode rejects fields the API does not define. The validator reports the first
    problem of each object, so one object yields at most one :class:`Problem`.
    Raises :class:`SchemaUnavailable` if the installed package lacks that version.
    """
    import kubernetes_validate
    from kubernetes_validate.utils import VersionNotSupportedError

    found = []
    for doc in documents:
        try:
            kubernetes_validate.validate(doc.data, version, strict=strict)
        except kubernetes_validate.ValidationError as exc:
            path = list(exc.absolute_path)
            found.append(Problem("schema", doc.index, doc.label, _dotted(path),
                                 _schema_message(exc), doc.line_of(path)))
        except kubernetes_validate.SchemaNotFoundError:
            found.append(Problem(
                "schema", doc.index, doc.label, "apiVersion",
                f"Kubernetes {version} has no kind '{doc.kind}' in apiVersion "
                f"'{doc.data.get('apiVersion')}' (a Deployment is apps/v1, a Service, "
                "ConfigMap or Secret v1)", doc.line_of(["apiVersion"])))
        except VersionNotSupportedError:
            raise SchemaUnavailable(
                f"the installed kubernetes-validate has no schema for Kubernetes {version}; "
                f"install a newer one: pip install 'kubernetes-validate>={version}'"
            ) from None
    return found


def _schema_message(exc: Any) -> str:
    """jsonschema's message, with a did-you-mean for a misspelled field."""
    message = str(exc.message)
    if exc.validator == "additionalProperties" and isinstance(exc.instance, Mapping):
        known = sorted((exc.schema or {}).get("properties") or {})
        extra = [k for k in exc.instance if k not in known]
        guesses = []
        for key in extra:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.7)
            guesses.append(f"'{key}' (did you mean '{close[0]}'?)" if close else f"'{key}'")
        if extra:
            message = (f"unknown field{'s' if len(extra) > 1 else ''} {', '.join(guesses)}: "
                       f"Kubernetes defines no such field here")
    return message[:300]


def _dotted(path: Sequence[Any]) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


# -- semantics ----------------------------------------------------------------------------------


def semantic_problems(
    documents: Sequence[Document], rules: Iterable[str] = RULES
) -> list[Problem]:
    """What a valid schema still allows but a working app cannot have (see :data:`RULES`).

    - ``names``: every object has a valid ``metadata.name``;
    - ``selector``: a workload's selector is not empty and matches its template's labels;
    - ``service``: a Service selects the pods of a workload in the same file, and its
      ``targetPort`` is a port those containers declare;
    - ``probes``: every container of a long-running workload has a readiness and a
      liveness probe;
    - ``resources``: every container requests and limits cpu and memory, requests ≤ limits;
    - ``image``: every image names a tag other than ``latest`` (or a digest).

    The checks read defensively: a field of the wrong type is skipped here, since
    :func:`schema_problems` reports it.
    """
    wanted = set(rules)
    unknown = wanted - set(RULES)
    if unknown:
        raise ValueError(f"unknown rule(s) {sorted(unknown)}; rules are {', '.join(RULES)}")
    found: list[Problem] = []
    checks = {
        "names": _name_problems, "selector": _selector_problems, "service": _service_problems,
        "probes": _probe_problems, "resources": _resource_problems, "image": _image_problems,
    }
    for rule in RULES:
        if rule in wanted:
            found.extend(checks[rule](documents))
    return found


def _get(data: Any, *path: str | int) -> Any:
    for step in path:
        if isinstance(step, str) and isinstance(data, Mapping):
            data = data.get(step)
        elif isinstance(step, int) and isinstance(data, list) and 0 <= step < len(data):
            data = data[step]
        else:
            return None
    return data


def _problem(rule: str, doc: Document, path: Sequence[str | int], message: str) -> Problem:
    return Problem(rule, doc.index, doc.label, _dotted(path), message, doc.line_of(path))


def pod_template(doc: Document) -> tuple[tuple[str | int, ...], dict[str, Any]] | None:
    """``(path, template)`` of a workload's pod template; a Pod is its own template."""
    if doc.kind == "Pod":
        return (), doc.data
    path = TEMPLATE_PATHS.get(doc.kind)
    if path is None:
        return None
    template = _get(doc.data, *path)
    return (path, template) if isinstance(template, dict) else None


def containers(doc: Document) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """``(path, container)`` for each container (init containers too) of a pod-bearing object."""
    found = pod_template(doc)
    if found is None:
        return
    base, template = found
    for key in ("initContainers", "containers"):
        items = _get(template, "spec", key)
        if isinstance(items, list):
            for index, item in enumerate(items):
                if isinstance(item, dict):
                    yield (*base, "spec", key, index), item


def _container_label(container: Mapping[str, Any]) -> str:
    return f"container '{container.get('name', '?')}'"


def _name_problems(documents: Sequence[Document]) -> list[Problem]:
    found = []
    for doc in documents:
        name = _get(doc.data, "metadata", "name")
        if not isinstance(name, str) or not name:
            found.append(_problem("names", doc, ["metadata"],
                                  "no metadata.name: the API server refuses an object without "
                                  "a name"))
            continue
        pattern, rule = (_DNS_LABEL, "start with a letter and hold only lower-case letters, "
                                     "digits and '-' (at most 63)") if doc.kind == "Service" \
            else (_DNS_SUBDOMAIN, "hold only lower-case letters, digits, '-' and '.', starting "
                                  "and ending with a letter or digit")
        if not pattern.match(name) or len(name) > (63 if doc.kind == "Service" else 253):
            found.append(_problem("names", doc, ["metadata", "name"],
                                  f"the name '{name}' is not allowed for a {doc.kind}: it must "
                                  f"{rule}"))
    return found


def selector_matches(selector: Any, labels: Mapping[str, Any] | None) -> bool:
    """A workload's ``matchLabels``/``matchExpressions`` (all must hold) against labels.

    An empty or missing selector matches nothing, as the API treats it for workloads.
    """
    if not isinstance(selector, Mapping):
        return False
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return False
    have = {str(k): str(v) for k, v in (labels or {}).items()}
    if not isinstance(match_labels, Mapping) or not isinstance(expressions, list):
        return False
    if any(have.get(str(k)) != str(v) for k, v in match_labels.items()):
        return False
    for expression in expressions:
        if not isinstance(expression, Mapping):
            return False
        key, operator = str(expression.get("key", "")), expression.get("operator")
        values = [str(v) for v in expression.get("values") or []]
        ok = {
            "In": key in have and have[key] in values,
            "NotIn": key not in have or have[key] not in values,
            "Exists": key in have,
            "DoesNotExist": key not in have,
        }.get(str(operator), False)
        if not ok:
            return False
    return True


def _labels_text(labels: Any) -> str:
    if not isinstance(labels, Mapping) or not labels:
        return "no labels"
    return ", ".join(f"{k}={v}" for k, v in labels.items())


def _selector_problems(documents: Sequence[Document]) -> list[Problem]:
    found = []
    for doc in documents:
        if doc.kind not in LONG_RUNNING:
            continue
        selector = _get(doc.data, "spec", "selector")
        labels = _get(doc.data, "spec", "template", "metadata", "labels")
        if not isinstance(selector, Mapping) or not (
                selector.get("matchLabels") or selector.get("matchExpressions")):
            found.append(_problem("selector", doc, ["spec"],
                                  "no spec.selector.matchLabels: the workload cannot find its "
                                  "own pods"))
        elif not selector_matches(selector, labels if isinstance(labels, Mapping) else {}):
            shown = _labels_text(selector.get("matchLabels")) if selector.get("matchLabels") \
                else "its matchExpressions"
            found.append(_problem(
                "selector", doc, ["spec", "selector"],
                f"the selector ({shown}) does not match the pod template's labels "
                f"({_labels_text(labels)}); the API server refuses such a "
                f"{doc.kind}: `selector` does not match template `labels`"))
    return found


def _declared_ports(template: Mapping[str, Any]) -> tuple[set[int], set[str]]:
    numbers: set[int] = set()
    names: set[str] = set()
    for container in _get(template, "spec", "containers") or []:
        if not isinstance(container, Mapping):
            continue
        for port in container.get("ports") or []:
            if isinstance(port, Mapping):
                if isinstance(port.get("containerPort"), int):
                    numbers.add(port["containerPort"])
                if isinstance(port.get("name"), str):
                    names.add(port["name"])
    return numbers, names


def _service_problems(documents: Sequence[Document]) -> list[Problem]:
    found = []
    workloads = []
    for doc in documents:
        located = pod_template(doc) if doc.kind in (*LONG_RUNNING, "Pod") else None
        if located is not None:
            labels = _get(located[1], "metadata", "labels")
            workloads.append((doc, located[1], labels if isinstance(labels, Mapping) else {}))
    for doc in documents:
        if doc.kind != "Service" or _get(doc.data, "spec", "type") == "ExternalName":
            continue
        selector = _get(doc.data, "spec", "selector")
        if not isinstance(selector, Mapping) or not selector:
            found.append(_problem("service", doc, ["spec"],
                                  "no spec.selector: the Service would never get endpoints"))
            continue
        chosen = [(w, t) for w, t, labels in workloads
                  if all(str(labels.get(k)) == str(v) for k, v in selector.items())]
        if not chosen:
            carried = "; ".join(f"{w.label} pods carry {_labels_text(labels)}"
                                for w, _, labels in workloads) or "the file has no workload"
            found.append(_problem(
                "service", doc, ["spec", "selector"],
                f"the selector ({_labels_text(selector)}) matches no pod template in this file "
                f"({carried}), so the Service would have no endpoints"))
            continue
        numbers: set[int] = set()
        names: set[str] = set()
        for _, template in chosen:
            more_numbers, more_names = _declared_ports(template)
            numbers |= more_numbers
            names |= more_names
        for index, port in enumerate(_get(doc.data, "spec", "ports") or []):
            if not isinstance(port, Mapping):
                continue
            target = port.get("targetPort", port.get("port"))
            if isinstance(target, int) and numbers and target not in numbers:
                found.append(_problem(
                    "service", doc, ["spec", "ports", index, "targetPort"],
                    f"targetPort {target} is not a port the selected containers declare "
                    f"({', '.join(map(str, sorted(numbers)))})"))
            elif isinstance(target, str) and not target.isdigit() and target not in names:
                found.append(_problem(
                    "service", doc, ["spec", "ports", index, "targetPort"],
                    f"targetPort '{target}' names no port of the selected containers "
                    f"(named ports: {', '.join(sorted(names)) or 'none'})"))
    return found


def _probe_problems(documents: Sequence[Document]) -> list[Problem]:
    found = []
    for doc in documents:
        if doc.kind not in LONG_RUNNING:
            continue
        for path, container in containers(doc):
            if path[-2] != "containers":
                continue  # init containers run to completion: probes do not apply
            missing = []
            for key in ("readinessProbe", "livenessProbe"):
                probe = container.get(key)
                if not isinstance(probe, Mapping):
                    missing.append(f"no {key}")
                elif sum(1 for h in PROBE_HANDLERS if h in probe) != 1:
                    missing.append(f"{key} needs exactly one of {', '.join(PROBE_HANDLERS)}")
            if missing:
                found.append(_problem("probes", doc, path,
                                      f"{_container_label(container)} has " + "; ".join(missing)))
    return found


_QUANTITY = re.compile(
    r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")
_SCALE = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": Decimal(10) ** 3,
          "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
          "P": Decimal(10) ** 15, "E": Decimal(10) ** 18, "Ki": Decimal(2) ** 10,
          "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
          "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60}


def parse_quantity(value: Any) -> Decimal:
    """A Kubernetes quantity (``250m``, ``0.5``, ``128Mi``, ``1e3``) as a number.

    Raises ValueError for anything else (``128MB`` is not a quantity: ``128M`` or ``128Mi``).
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a quantity")
    matched = _QUANTITY.match(str(value).strip())
    if matched is None:
        raise ValueError(f"'{value}' is not a Kubernetes quantity (e.g. 250m, 0.5, 64Mi, 1Gi)")
    number, exponent, suffix = matched.groups()
    try:
        amount = Decimal(number + (exponent or ""))
    except InvalidOperation:
        raise ValueError(f"'{value}' is not a Kubernetes quantity") from None
    return amount * _SCALE[suffix] if suffix else amount


def _resource_problems(documents: Sequence[Document]) -> list[Problem]:
    found = []
    for doc in documents:
        for path, container in containers(doc):
            resources = container.get("resources")
            resources = resources if isinstance(resources, Mapping) else {}
            missing = [f"{kind}.{what}" for kind in ("requests", "limits")
                       for what in ("cpu", "memory")
                       if not isinstance(resources.get(kind), Mapping)
                       or resources[kind].get(what) in (None, "")]
            if missing:
                found.append(_problem("resources", doc, [*path, "resources"],
                                      f"{_container_label(container)} sets no "
                                      f"{', '.join(missing)}"))
                continue
            for what in ("cpu", "memory"):
                try:
                    request = parse_quantity(resources["requests"][what])
                    limit = parse_quantity(resources["limits"][what])
                except ValueError as exc:
                    found.append(_problem("resources", doc, [*path, "resources"],
                                          f"{_container_label(container)}: {what}: {exc}"))
                    continue
                if request > limit:
                    found.append(_problem(
                        "resources", doc, [*path, "resources", "requests", what],
                        f"{_container_label(container)} requests more {what} "
                        f"({resources['requests'][what]}) than its limit "
                        f"({resources['limits'][what]}); the API server refuses that"))
    return found


def image_tag(image: str) -> str:
    """The tag of an image reference (``''`` if none; ``@sha256:...`` counts as a digest)."""
    if "@" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def _image_problems(documents: Sequence[Document]) -> list[Problem]:
    found = []
    for doc in documents:
        for path, container in containers(doc):
            image = container.get("image")
            if not isinstance(image, str) or not image.strip():
                found.append(_problem("image", doc, path,
                                      f"{_container_label(container)} names no image"))
                continue
            tag = image_tag(image)
            if not tag or tag == "latest":
                said = "no tag, which means ':latest'" if not tag else "the tag 'latest'"
                found.append(_problem(
                    "image", doc, [*path, "image"],
                    f"{_container_label(container)} uses '{image}' with {said}: which image "
                    "runs then depends on when and where it was pulled. Pin a version "
                    "(e.g. dockyard/api:1)"))
    return found
