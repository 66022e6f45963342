"""The kind backend, driven through fake ``kind`` executables: no cluster is needed.

Each fake is a small Python script put first on PATH. It records every call in
``calls.log`` and answers from ``scenario.json`` (which clusters exist, which command
fails, sleeps or streams progress), so a test can prove what Dockyard asked kind to
do, and what it never asked (no ``create`` for a reused cluster, no ``delete`` of
another cluster). Docker and the Kubernetes API are replaced with small fakes.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kernel_helpers import engine as eng
from kernel_helpers import images, kind
from kernel_helpers import kubernetes as kube

FAKE_KIND = textwrap.dedent('''\
    #!{python}
    import json, pathlib, sys, time
    here = pathlib.Path(__file__).parent
    args = sys.argv[1:]
    with open(here / "calls.log", "a") as log:
        log.write(" ".join(args) + "\\n")
    scenario = json.loads((here / "scenario.json").read_text())
    command = " ".join(args[:2])
    if command in scenario.get("sleep", {{}}):
        time.sleep(scenario["sleep"][command])
    for line in scenario.get("lines", {{}}).get(command, []):
        print(line, file=sys.stderr, flush=True)
    if command in scenario.get("fail", {{}}):
        print(scenario["fail"][command], file=sys.stderr)
        sys.exit(1)
    if args[:1] == ["version"]:
        print("kind v0.30.0 go1.24.6 linux/amd64")
    elif command == "get clusters":
        names = scenario.get("clusters", [])
        print("\\n".join(names)) if names else print("No kind clusters found.", file=sys.stderr)
    elif command in ("create cluster", "delete cluster"):
        # Like kind: the named cluster exists after a create and is gone after a delete.
        name = args[args.index("--name") + 1]
        names = [n for n in scenario.get("clusters", []) if n != name]
        scenario["clusters"] = names + ([name] if args[0] == "create" else [])
        (here / "scenario.json").write_text(json.dumps(scenario))
    ''')

NODE_NAMES = ("dockyard-control-plane", "dockyard-worker", "dockyard-worker2")


def path_without_kind(*first: Path) -> str:
    """This machine's PATH, minus any directory that holds a real ``kind``."""
    keep = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not (Path(d) / "kind").exists()]
    return os.pathsep.join([*(str(p) for p in first), *keep])


class FakeKind:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.scenario: dict[str, Any] = {}
        self.write()

    def write(self, **scenario: Any) -> FakeKind:
        self.scenario.update(scenario)
        (self.folder / "scenario.json").write_text(json.dumps(self.scenario))
        return self

    @property
    def calls(self) -> list[str]:
        log = self.folder / "calls.log"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def fake_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKind:
    folder = tmp_path / "fakebin"
    folder.mkdir()
    script = folder / "kind"
    script.write_text(FAKE_KIND.format(python=sys.executable))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", path_without_kind(folder))
    return FakeKind(folder)


@pytest.fixture
def no_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", path_without_kind())
    assert shutil.which("kind") is None


@pytest.fixture(autouse=True)
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own (initially absent) kubeconfig; never the machine's."""
    path = tmp_path / "kube" / "config"
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("DOCKYARD_KUBE_CONTEXT", raising=False)
    return path


# -- fakes for Docker and the Kubernetes API -------------------------------------------


def node(name: str, *, ready: bool = True, control_plane: bool = False,
         images_held: tuple[str, ...] = ()) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name}
    if control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "nodeInfo": {"kubeletVersion": "v1.34.0"},
            "images": [{"names": [f"docker.io/{tag}", "docker.io/library/x@sha256:00"]}
                       for tag in images_held],
        },
    }


def healthy_nodes(images_held: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [node(name, control_plane=name.endswith("control-plane"), images_held=images_held)
            for name in NODE_NAMES]


class World:
    """What Docker and the API server report, and what Dockyard asked of them."""

    def __init__(self) -> None:
        self.containers = dict.fromkeys(NODE_NAMES, "running")
        self.nodes = healthy_nodes()
        self.api_error: Exception | None = None
        self.connected: list[str] = []
        self.ensured: list[list[str]] = []
        self.filters: list[Any] = []

    def engine(self) -> Any:
        def listing(all: bool = False, filters: Any = None) -> list[Any]:
            self.filters.append(filters)
            return [SimpleNamespace(name=n, status=s) for n, s in self.containers.items()]

        return SimpleNamespace(client=SimpleNamespace(containers=SimpleNamespace(list=listing)))

    def connect(self, context: str | None = None, **_: Any) -> Any:
        if self.api_error:
            raise self.api_error
        self.connected.append(str(context))
        return SimpleNamespace(context=context, nodes=lambda: self.nodes)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    state = World()
    monkeypatch.setattr(eng, "connect", lambda **_: state.engine())
    monkeypatch.setattr(kube, "connect", state.connect)
    monkeypatch.setattr(kube, "wait_nodes_ready", lambda cluster, timeout=180: sorted(
        n["metadata"]["name"] for n in state.nodes))
    monkeypatch.setattr(images, "ensure", lambda names, engine=None, log=None:
                        state.ensured.append(list(names)))
    monkeypatch.setattr(kind, "lab_images", lambda: ["dockyard/api:1", "dockyard/api:2"])
    return state


def collect() -> tuple[list[str], Callable[[str], None]]:
    lines: list[str] = []
    return lines, lines.append


# -- kind missing, Docker down ---------------------------------------------------------


def test_up_without_kind_says_how_to_install_it(no_kind: None) -> None:
    with pytest.raises(kind.KindMissing) as caught:
        kind.up()
    assert caught.value.code == 2
    assert "kind is not installed" in str(caught.value)
    assert "kind.sigs.k8s.io/dl/" in str(caught.value) or "brew install kind" in str(caught.value)


@pytest.mark.parametrize(("system", "machine", "expected"), [
    ("Linux", "x86_64", "https://kind.sigs.k8s.io/dl/v0.30.0/kind-linux-amd64"),
    ("Linux", "aarch64", "kind-linux-arm64"),
    ("Darwin", "arm64", "brew install kind"),
    ("Windows", "AMD64", "winget install Kubernetes.kind"),
    ("Windows", "AMD64", "choco install kind"),
])
def test_install_hint_per_platform(system: str, machine: str, expected: str) -> None:
    assert expected in kind.install_hint(system, machine)


def test_up_with_docker_down_names_docker_and_runs_no_create(
    fake_kind: FakeKind, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(**_: Any) -> Any:
        raise eng.EngineUnavailable("no Docker engine answered. Tried: unix:///x.sock")

    monkeypatch.setattr(eng, "connect", down)
    with pytest.raises(kind.KindError) as caught:
        kind.up()
    assert caught.value.code == 2
    assert "kind runs its nodes as Docker containers" in str(caught.value)
    assert "unix:///x.sock" in str(caught.value)
    assert not any(c.startswith("create") for c in fake_kind.calls)


# -- create, reuse, half-created ---------------------------------------------------------


def test_up_creates_the_cluster_from_the_repo_config(fake_kind: FakeKind, world: World) -> None:
    fake_kind.write(lines={"create cluster": ["Creating cluster \"dockyard\" ...",
                                              " ✓ Ensuring node image (kindest/node:v1.34.0)",
                                              " ✓ Preparing nodes 📦 📦 📦"]})
    lines, log = collect()
    result = kind.up(log=log)
    create = next(c for c in fake_kind.calls if c.startswith("create cluster"))
    assert create == (f"create cluster --name dockyard --config {kind.CONFIG} --wait 180s")
    assert " ✓ Preparing nodes 📦 📦 📦".strip() in lines, "kind's progress reaches the log"
    assert "export kubeconfig --name dockyard" in fake_kind.calls
    assert set(world.connected) == {"kind-dockyard"}, "only the lab's context is touched"
    assert world.ensured == [["dockyard/api:1", "dockyard/api:2"]], "missing images get built"
    loads = [c for c in fake_kind.calls if c.startswith("load docker-image")]
    assert loads == ["load docker-image --name dockyard dockyard/api:1",
                     "load docker-image --name dockyard dockyard/api:2"]
    assert any("(1/2)" in line for line in lines) and any("(2/2)" in line for line in lines)
    assert result.context == "kind-dockyard" and result.kind_version == "v0.30.0"
    assert [n.roles for n in result.nodes] == [["control-plane"], ["worker"], ["worker"]]
    assert result.ok


def test_the_config_declares_one_control_plane_and_two_workers() -> None:
    assert kind.config_roles() == ["control-plane", "worker", "worker"]
    assert kind.CONFIG.read_text().startswith("#"), "the file explains itself to students"


def test_a_healthy_cluster_is_reused_not_recreated(fake_kind: FakeKind, world: World) -> None:
    fake_kind.write(clusters=["kind", "dockyard"])
    lines, log = collect()
    result = kind.up(log=log)
    assert not any(c.startswith(("create", "delete")) for c in fake_kind.calls), fake_kind.calls
    assert any("reusing it" in line for line in lines)
    assert world.filters == [{"label": "io.x-k8s.kind.cluster=dockyard"}]
    assert [c for c in fake_kind.calls if c.startswith("load")], "images are still preloaded"
    assert result.ok and result.exists is True


@pytest.mark.parametrize(("containers", "expected"), [
    ({"dockyard-control-plane": "running", "dockyard-worker": "exited",
      "dockyard-worker2": "running"}, "dockyard-worker is exited"),
    ({"dockyard-control-plane": "running", "dockyard-worker": "running"},
     "only 2 of its 3 node containers exist"),
])
def test_a_half_created_cluster_is_reported_not_recreated(
    fake_kind: FakeKind, world: World, containers: dict[str, str], expected: str
) -> None:
    fake_kind.write(clusters=["dockyard"])
    world.containers = containers
    with pytest.raises(kind.KindError) as caught:
        kind.up()
    message = str(caught.value)
    assert "half created" in message and expected in message
    assert "`dockyard cluster down` then `dockyard cluster up`" in message
    assert not any(c.startswith(("create", "delete", "load")) for c in fake_kind.calls)


def test_an_existing_cluster_whose_api_does_not_answer_is_half_created(
    fake_kind: FakeKind, world: World
) -> None:
    fake_kind.write(clusters=["dockyard"])
    world.api_error = kube.ClusterUnavailable("the API server of context 'kind-dockyard' did "
                                              "not answer: connection refused")
    with pytest.raises(kind.KindError) as caught:
        kind.up()
    assert "does not answer" in str(caught.value) and "connection refused" in str(caught.value)
    assert "half created" in str(caught.value)
    assert not any(c.startswith("create") for c in fake_kind.calls)


def test_fewer_nodes_than_the_config_is_half_created(fake_kind: FakeKind, world: World) -> None:
    fake_kind.write(clusters=["dockyard"])
    world.nodes = world.nodes[:2]
    with pytest.raises(kind.KindError, match=r"has 2 nodes, but kind-cluster.yaml declares 3"):
        kind.up()


def test_kind_failing_shows_its_last_lines(fake_kind: FakeKind, world: World) -> None:
    fake_kind.write(lines={"create cluster": [" ✗ Preparing nodes 📦"]},
                    fail={"create cluster": "ERROR: failed to create cluster: could not find "
                                            "a log line that matches \"Reached target\""})
    lines, log = collect()
    with pytest.raises(kind.KindError) as caught:
        kind.up(log=log)
    message = str(caught.value)
    assert caught.value.code == 1
    assert "`kind create cluster --name dockyard" in message and "(exit 1)" in message
    assert "ERROR: failed to create cluster" in message and "✗ Preparing nodes" in message
    assert "dockyard doctor" in message
    assert " ✗ Preparing nodes 📦".strip() in lines
    assert not any(c.startswith("load") for c in fake_kind.calls)


def test_a_hung_create_is_stopped_at_its_deadline(
    fake_kind: FakeKind, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kind, "CREATE_TIMEOUT", 1.0)
    fake_kind.write(sleep={"create cluster": 30})
    started = time.monotonic()
    with pytest.raises(kind.KindError) as caught:
        kind.up()
    assert time.monotonic() - started < 10
    assert "did not finish within 1 s" in str(caught.value)
    assert "half created" in str(caught.value)


def test_a_quick_command_that_hangs_is_stopped(
    fake_kind: FakeKind, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kind, "QUICK_TIMEOUT", 1.0)
    fake_kind.write(sleep={"get clusters": 30})
    started = time.monotonic()
    with pytest.raises(kind.KindError, match="did not finish within 1 s"):
        kind.clusters()
    assert time.monotonic() - started < 10


def test_nodes_that_never_become_ready(
    fake_kind: FakeKind, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(cluster: Any, timeout: float = 180) -> list[str]:
        raise kube.ClusterFault("gave up after 180 s waiting for every node to be Ready: "
                                "not Ready yet: dockyard-worker2")

    monkeypatch.setattr(kube, "wait_nodes_ready", never)
    fake_kind.write(clusters=["dockyard"])
    with pytest.raises(kind.KindError, match="dockyard-worker2") as caught:
        kind.up()
    assert "kubectl describe nodes" in str(caught.value)


def test_up_refuses_a_chosen_foreign_context(
    fake_kind: FakeKind, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKYARD_KUBE_CONTEXT", "work-cluster")
    for action in (kind.up, kind.down):
        with pytest.raises(kind.KindError) as caught:
            action()
        assert caught.value.code == 2 and "'work-cluster'" in str(caught.value)
        assert "only manages the lab's own kind cluster" in str(caught.value)
    assert fake_kind.calls == [], "kind was never run"


# -- images ------------------------------------------------------------------------------


@pytest.mark.parametrize(("tag", "ok"), [
    ("dockyard/api:1", True), ("localhost:5000/dockyard/api:2", True),
    ("dockyard/api@sha256:" + "0" * 64, True), ("dockyard/api", False),
    ("dockyard/api:latest", False), ("localhost:5000/api", False),
])
def test_only_pinned_tags_count(tag: str, ok: bool) -> None:
    assert kind.pinned(tag) is ok


def test_a_latest_tag_is_refused_before_anything_is_loaded(
    fake_kind: FakeKind, world: World
) -> None:
    with pytest.raises(kind.KindError, match="imagePullPolicy Always") as caught:
        kind.load_images(["dockyard/api:1", "dockyard/api:latest"])
    assert caught.value.code == 2
    assert world.ensured == [] and fake_kind.calls == []


def test_lab_images_fall_back_while_the_labs_are_not_registered(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    import checkers

    def unknown(lab: str | None = None) -> list[Any]:
        raise checkers.UnknownLab(f"there is no lab '{lab}'")

    monkeypatch.setattr(checkers, "all_exercises", unknown)
    assert kind.lab_images() == ["dockyard/api:1", "dockyard/api:2"]
    monkeypatch.setattr(checkers, "all_exercises", lambda lab=None: [])
    assert kind.lab_images() == ["dockyard/api:1", "dockyard/api:2"], "registered, still empty"


def test_lab_images_are_the_union_over_both_labs(monkeypatch: pytest.MonkeyPatch) -> None:
    import checkers

    declared: dict[str, list[tuple[str, ...]]] = {
        "06-kubernetes": [("api-v1",), ("api-v1", "tools")],
        "07-deployment-patterns": [("api-v2", "api-v1")]}
    monkeypatch.setattr(checkers, "all_exercises", lambda lab=None: [
        SimpleNamespace(images=names) for names in declared[str(lab)]])
    assert kind.lab_images() == ["dockyard/api:1", "dockyard/tools:1", "dockyard/api:2"]


def test_a_failed_load_names_the_image(fake_kind: FakeKind, world: World) -> None:
    fake_kind.write(fail={"load docker-image": "ERROR: image: \"dockyard/api:2\" not present "
                                               "locally"})
    with pytest.raises(kind.KindError, match="not present locally"):
        kind.load_images(["dockyard/api:2"])


# -- down ---------------------------------------------------------------------------------


def test_down_deletes_only_the_lab_cluster(fake_kind: FakeKind, world: World) -> None:
    fake_kind.write(clusters=["kind", "dockyard", "work"])
    assert kind.down() is True
    deletes = [c for c in fake_kind.calls if c.startswith("delete")]
    assert deletes == ["delete cluster --name dockyard"]
    assert kind.clusters() == ["kind", "work"]


def test_down_without_the_cluster_deletes_nothing(fake_kind: FakeKind, world: World) -> None:
    fake_kind.write(clusters=["kind"])
    lines, log = collect()
    assert kind.down(log=log) is False
    assert not any(c.startswith("delete") for c in fake_kind.calls)
    assert any("nothing to delete" in line for line in lines)


# -- status -------------------------------------------------------------------------------


def test_status_of_a_chosen_context_needs_no_kind(
    no_kind: None, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKYARD_KUBE_CONTEXT", "k3d-shared")
    world.nodes = [node("server-0", control_plane=True, images_held=("dockyard/api:1",)),
                   node("agent-0", ready=False)]
    result = kind.status()
    assert world.connected == ["k3d-shared"]
    assert not result.kind_managed and result.reachable
    data = result.to_dict()
    assert data["kind_version"] == "not applicable" and data["exists"] == "not applicable"
    assert "kind: not applicable" in str(result)
    assert [(n.name, n.ready, n.images) for n in result.nodes] == [
        ("server-0", True, ["dockyard/api:1"]), ("agent-0", False, [])]
    assert not result.ok and any("agent-0 is not Ready" in p for p in result.problems)
    assert data["images_missing"] == {"dockyard/api:1": ["agent-0"],
                                      "dockyard/api:2": ["server-0", "agent-0"]}


def test_status_reads_lab_images_from_the_nodes(fake_kind: FakeKind, world: World) -> None:
    fake_kind.write(clusters=["dockyard"])
    world.nodes = healthy_nodes(images_held=("dockyard/api:1", "dockyard/api:2"))
    result = kind.status()
    assert result.ok and result.exists and result.kind_version == "v0.30.0"
    assert all(n.images == ["dockyard/api:1", "dockyard/api:2"] for n in result.nodes)
    assert result.images_missing() == {}


def test_status_flags_a_cluster_with_too_few_nodes(fake_kind: FakeKind, world: World) -> None:
    fake_kind.write(clusters=["dockyard"])
    world.nodes = world.nodes[:1]
    result = kind.status()
    assert not result.ok
    assert any("has 1 nodes, but kind-cluster.yaml declares 3" in p and "cluster down" in p
               for p in result.problems)


def test_status_without_the_cluster_says_how_to_create_it(
    fake_kind: FakeKind, world: World
) -> None:
    result = kind.status()
    assert result.exists is False and not result.ok and world.connected == []
    assert any("`dockyard cluster up` creates it" in p for p in result.problems)


def test_status_names_a_foreign_current_context(
    fake_kind: FakeKind, world: World, kubeconfig: Path
) -> None:
    fake_kind.write(clusters=["dockyard"])
    kubeconfig.parent.mkdir(parents=True)
    kubeconfig.write_text("apiVersion: v1\ncurrent-context: work-prod\ncontexts:\n"
                          "- name: work-prod\n- name: kind-dockyard\n")
    result = kind.status()
    assert result.current_context == "work-prod"
    assert any("'work-prod'" in n and "use-context kind-dockyard" in n for n in result.notes)


def test_read_kubeconfig_merges_files_like_kubectl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, broken = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    first.write_text("contexts:\n- name: one\n")
    second.write_text("current-context: two\ncontexts:\n- name: two\n- name: one\n")
    broken.write_text("current-context: [unclosed\n")
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join(map(str, (first, tmp_path / "none",
                                                               second))))
    facts = kind.read_kubeconfig()
    assert facts.current == "two" and facts.contexts == ["one", "two"] and not facts.problem
    monkeypatch.setenv("KUBECONFIG", str(broken))
    assert f"{broken} cannot be read" in kind.read_kubeconfig().problem


# -- the CLI, as a student runs it (PATH without kind) ---------------------------------


KIND_KUBECONFIG = textwrap.dedent("""\
    apiVersion: v1
    kind: Config
    current-context: kind-dockyard
    clusters:
    - name: kind-dockyard
      cluster: {server: "https://127.0.0.1:1"}
    contexts:
    - name: kind-dockyard
      context: {cluster: kind-dockyard, user: kind-dockyard}
    users:
    - name: kind-dockyard
      user: {token: not-a-real-token}
    """)


def no_traceback(done: Any) -> None:
    assert "Traceback" not in done.stdout + done.stderr, done.stderr


def test_cli_cluster_up_without_kind(cli: Any, tmp_path: Path) -> None:
    done = cli("cluster", "up", env={"PATH": path_without_kind()})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "kind is not installed" in done.stderr and "Install it:" in done.stderr
    no_traceback(done)


def test_cli_cluster_status_json_without_kind(cli: Any) -> None:
    done = cli("cluster", "status", "--json", env={"PATH": path_without_kind()})
    assert done.returncode == 2, done.stderr
    data = json.loads(done.stdout)
    assert data["kind_version"] is None and data["ok"] is False
    assert any("kind is not installed" in p for p in data["problems"])
    no_traceback(done)


def test_cli_cluster_status_of_a_missing_chosen_context(cli: Any, kubeconfig: Path) -> None:
    kubeconfig.parent.mkdir(parents=True)
    kubeconfig.write_text(KIND_KUBECONFIG)
    done = cli("cluster", "status", "--json", "--context", "shared-lab",
               env={"PATH": path_without_kind()})
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["context"] == "shared-lab" and data["kind_version"] == "not applicable"
    assert any("'shared-lab' is not in the kubeconfig" in p for p in data["problems"])
    no_traceback(done)


@pytest.mark.parametrize("action", ["up", "down"])
def test_cli_cluster_refuses_a_chosen_foreign_context(cli: Any, action: str) -> None:
    done = cli("cluster", action, env={"DOCKYARD_KUBE_CONTEXT": "work-prod"})
    assert done.returncode == 2
    assert "'work-prod'" in done.stderr and "only manages the lab's own kind cluster" in done.stderr
    no_traceback(done)


def test_cli_empty_context_is_bad_input(cli: Any) -> None:
    done = cli("check", "--context", " ", "welcome.first-check")
    assert done.returncode == 2 and "--context needs a context name" in done.stderr
    no_traceback(done)


@pytest.mark.docker
def test_cli_cluster_up_when_kind_fails(cli: Any, fake_kind: FakeKind) -> None:
    """Real Docker, fake kind: kind's own last lines reach the student, then exit 1."""
    fake_kind.write(fail={"create cluster": "ERROR: failed to create cluster: boom"})
    done = cli("cluster", "up", env={"PATH": os.environ["PATH"]})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ERROR: failed to create cluster: boom" in done.stderr
    no_traceback(done)
