"""Pictures of the live cluster for the notebooks: which pod runs on which node.

``node_map()`` reads the nodes and the pods of a namespace and draws each node as a
box with its pods inside, the same information as ``kubectl get pods -o wide`` plus
``kubectl get nodes``, but shaped like the cluster. The control-plane node is marked
(kind keeps ordinary pods off it), pods that are not Ready are coloured, and pods no
node has taken yet sit in a box of their own. Without a cluster it prints why.

matplotlib is imported only to draw, and the figure is made without pyplot, so the
picture never depends on a notebook's backend or leaks into later cells.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel_helpers import kubernetes as kube

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The box for pods the scheduler has not placed on any node.
UNSCHEDULED = "(no node yet)"
COLOURS = {"ready": "#2da44e", "waiting": "#d4a72c", "failed": "#cf222e", "done": "#8c959f"}


@dataclass(frozen=True)
class PodMark:
    """One pod as the picture shows it: its name, and a one-word state."""

    name: str
    state: str  # ready | waiting | failed | done
    detail: str = ""

    @property
    def ready(self) -> bool:
        return self.state == "ready"


@dataclass
class NodeBox:
    """One node and the pods the scheduler put on it."""

    name: str
    control_plane: bool = False
    ready: bool = True
    pods: list[PodMark] = field(default_factory=list)
    #: Taints that keep ordinary pods away (``NoSchedule``/``NoExecute``), as ``key:effect``.
    taints: list[str] = field(default_factory=list)


def pod_state(pod: Mapping[str, Any]) -> tuple[str, str]:
    """``(state, detail)``: ready, waiting (Pending, not Ready, crashing), failed or done."""
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    if phase == "Succeeded":
        return "done", "Completed"
    if phase == "Failed":
        return "failed", str(status.get("reason") or "Failed")
    for state in status.get("containerStatuses") or []:
        waiting = (state.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            bad = waiting["reason"] in ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull",
                                        "CreateContainerConfigError", "InvalidImageName")
            return ("failed" if bad else "waiting"), str(waiting["reason"])
    if kube.pod_ready(pod):
        return "ready", "Ready"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return "waiting", str(condition.get("reason") or "Unschedulable")
    return "waiting", "Running, not Ready" if phase == "Running" else phase


def placement(
    nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]
) -> list[NodeBox]:
    """Group ``pods`` by the node they run on: control plane first, then workers by name.

    Pods on a node that is not in ``nodes`` get a box of their own; pods with no node
    yet go last, in the :data:`UNSCHEDULED` box.
    """
    boxes: dict[str, NodeBox] = {}
    for node in sorted(nodes, key=lambda n: (not kube.is_control_plane(n),
                                             str((n.get("metadata") or {}).get("name")))):
        name = str((node.get("metadata") or {}).get("name", "?"))
        taints = [f"{t.get('key')}:{t.get('effect')}" for t in (node.get("spec") or {}).get(
            "taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")]
        boxes[name] = NodeBox(name, kube.is_control_plane(node), kube.node_ready(node),
                              taints=taints)
    waiting: list[PodMark] = []
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name"))):
        state, detail = pod_state(pod)
        mark = PodMark(str((pod.get("metadata") or {}).get("name", "?")), state, detail)
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            waiting.append(mark)
            continue
        boxes.setdefault(str(node_name), NodeBox(str(node_name), ready=False)).pods.append(mark)
    result = list(boxes.values())
    if waiting:
        result.append(NodeBox(UNSCHEDULED, ready=False, pods=waiting))
    return result


@dataclass
class NodeMap:
    """The picture of one namespace's pods on the cluster's nodes.

    Shows as a PNG in a notebook and as text elsewhere (``print(node_map())``).
    """

    boxes: list[NodeBox]
    namespace: str
    selector: dict[str, str] = field(default_factory=dict)
    context: str = ""

    @property
    def by_node(self) -> dict[str, list[str]]:
        """``{node: [pod names]}``, the evidence behind the picture."""
        return {box.name: [p.name for p in box.pods] for box in self.boxes}

    def title(self) -> str:
        chosen = ",".join(f"{k}={v}" for k, v in self.selector.items())
        count = sum(len(b.pods) for b in self.boxes)
        return (f"{count} pod(s) in namespace {self.namespace}"
                + (f" with {chosen}" if chosen else "")
                + (f" · context {self.context}" if self.context else ""))

    def __str__(self) -> str:
        lines = [self.title()]
        for box in self.boxes:
            role = " (control plane)" if box.control_plane else ""
            health = "" if box.ready or box.name == UNSCHEDULED else " [node not Ready]"
            tainted = f" [taints: {', '.join(box.taints)}]" if box.taints else ""
            lines.append(f"  {box.name}{role}{health}{tainted}: " + (", ".join(
                p.name + ("" if p.ready else f" [{p.detail}]") for p in box.pods) or "no pods"))
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def figure(self) -> Figure:
        """The drawing: one column per node, a rounded box per pod."""
        from matplotlib.figure import Figure
        from matplotlib.patches import FancyBboxPatch

        columns = max(1, len(self.boxes))
        rows = max([len(b.pods) for b in self.boxes] + [1])
        width, height = 3.2 * columns, 1.5 + 0.55 * rows
        fig = Figure(figsize=(min(width, 16), height), dpi=100)
        ax = fig.add_axes((0, 0, 1, 0.9))
        ax.set_xlim(0, columns * 3.2)
        ax.set_ylim(-(rows * 0.55 + 0.4), 0.9)
        ax.axis("off")
        fig.suptitle(self.title(), fontsize=10)
        for column, box in enumerate(self.boxes):
            left = column * 3.2 + 0.1
            top, bottom = 0.8, -(rows * 0.55 + 0.3)
            if box.name == UNSCHEDULED:
                face, edge, style = "#ffffff", "#d4a72c", "--"
            elif box.control_plane:
                face, edge, style = "#eaeef2", "#57606a", ":"
            else:
                face, edge, style = "#f6f8fa", "#24292f" if box.ready else "#cf222e", "-"
            ax.add_patch(FancyBboxPatch((left, bottom), 3.0, top - bottom,
                                        boxstyle="round,pad=0.02,rounding_size=0.1",
                                        facecolor=face, edgecolor=edge, linestyle=style,
                                        linewidth=1.4))
            label = box.name + ("\ncontrol plane" if box.control_plane else "")
            if not box.ready and box.name != UNSCHEDULED:
                label += "\nnode not Ready"
            ax.text(left + 1.5, top - 0.12, label, ha="center", va="top", fontsize=9,
                    fontweight="bold", color=edge)
            if not box.pods:
                effects = sorted({t.split(":")[-1] for t in box.taints})
                ax.text(left + 1.5, top - 0.75, "no pods" + (
                    f"\n(tainted: {', '.join(effects)})" if effects else ""), ha="center",
                    va="top", fontsize=8, color="#57606a", style="italic")
            for row, pod in enumerate(box.pods):
                y = top - 0.75 - row * 0.55
                ax.add_patch(FancyBboxPatch((left + 0.15, y - 0.2), 2.7, 0.4,
                                            boxstyle="round,pad=0.02,rounding_size=0.08",
                                            facecolor=COLOURS[pod.state], edgecolor="none"))
                text = pod.name if len(pod.name) <= 30 else pod.name[:28] + "…"
                if not pod.ready:
                    text += f"  ({pod.detail})"[:40]
                ax.text(left + 1.5, y, text, ha="center", va="center", fontsize=7.5,
                        color="white" if pod.state != "waiting" else "#24292f")
        return fig

    def _repr_png_(self) -> bytes:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig = self.figure()
        FigureCanvasAgg(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def _selector(selector: Mapping[str, str] | str | None) -> dict[str, str]:
    """``{"app": "web"}`` or ``"app=web,tier=front"`` as a dict; ValueError if malformed."""
    if selector is None:
        return {}
    if isinstance(selector, Mapping):
        return {str(k): str(v) for k, v in selector.items()}
    chosen = {}
    for part in str(selector).split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not key.strip():
            raise ValueError(f"'{selector}' is not a label selector like app=web")
        chosen[key.strip()] = value.strip().lstrip("=")
    return chosen


def node_map(
    namespace: str | None = None,
    selector: Mapping[str, str] | str | None = None,
    *,
    context: str | None = None,
) -> NodeMap | None:
    """Draw the nodes and the pods on them from the live cluster.

    ``kubectl get pods -n NAMESPACE -l SELECTOR -o wide`` as a picture. ``namespace``
    defaults to lab 06's (``dockyard-k8s``); ``selector`` is ``{"app": "web"}`` or
    ``"app=web"``. With no cluster, the wrong kube context or an API error it prints
    the reason and returns None; it never raises for those.
    """
    ns = namespace or kube.LAB_NAMESPACES["06-kubernetes"]
    try:
        chosen = _selector(selector)
    except ValueError as exc:
        print(f"No picture: {exc}.")
        return None
    try:
        cluster = kube.connect(context)
        nodes = cluster.nodes()
        pods = cluster.pods(ns, chosen or None)
    except kube.ClusterUnavailable as exc:
        print(f"No picture: {exc}")
        return None
    except kube.ClusterFault as exc:
        print(f"No picture: {exc}")
        return None
    except Exception as exc:
        if kube.api_status(exc) is None and not kube.is_cluster_fault(exc):
            raise
        kube.forget()
        print("No picture: " + kube.explain_api_error(exc, "list the nodes and pods", ns))
        return None
    return NodeMap(placement(nodes, pods), ns, chosen, cluster.context)
