"""The lab's own images, built from Dockerfiles in ``labs/images/`` and never pulled.

``dockyard images build`` and exercise setup both come here. Builds stream the
engine's own output into a progress callback (a rich progress bar in the CLI, a
line log in a notebook). Every image carries the ``_images`` pseudo-lab label, so a
lab reset leaves these (slow to rebuild) images in place.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernel_helpers import engine as eng

IMAGES_DIR = Path(__file__).resolve().parent.parent / "labs" / "images"

#: Base images the Dockerfiles start from. Students' Docker pulls them; CI builds them locally.
BASE_IMAGES = ("busybox:latest", "debian:bookworm-slim")


@dataclass(frozen=True)
class ImageSpec:
    """One lab image: ``docker build -t TAG --build-arg K=V labs/images/CONTEXT``."""

    name: str
    context: str
    tag: str
    buildargs: dict[str, str] = field(default_factory=dict)
    base: str = "busybox:latest"
    summary: str = ""


def discover(images_dir: Path = IMAGES_DIR) -> tuple[ImageSpec, ...]:
    """Read every ``labs/images/<context>/image.json``, lab images built on others last.

    Each file names its Dockerfile's ``base`` and the images it builds (name, tag,
    build args, summary), so a lab adds an image by adding a folder, not by editing here.
    """
    found: list[ImageSpec] = []
    for manifest in sorted(images_dir.glob("*/image.json")):
        data = json.loads(manifest.read_text(encoding="utf-8"))
        for item in data["images"]:
            found.append(ImageSpec(
                name=item["name"], context=manifest.parent.name, tag=item["tag"],
                buildargs=dict(item.get("buildargs", {})),
                base=item.get("base", data.get("base", "busybox:latest")),
                summary=item.get("summary", ""),
            ))
    tags = {spec.tag for spec in found}
    return tuple(sorted(found, key=lambda spec: spec.base in tags))


IMAGES: tuple[ImageSpec, ...] = discover()

Log = Callable[[str], None]


class ImageBuildError(RuntimeError):
    """A lab image could not be built; the message quotes the engine."""


def spec(name: str) -> ImageSpec:
    for image in IMAGES:
        if name in (image.name, image.tag):
            return image
    raise KeyError(f"no lab image '{name}'. Lab images: {', '.join(i.name for i in IMAGES)}")


def local_image_name(image: str) -> ImageSpec | None:
    """The spec that builds ``image``, if it is one of the lab's own."""
    return next((i for i in IMAGES if image in (i.tag, i.name)), None)


def present(engine: eng.Engine, tag: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        engine.client.images.get(tag)
        return True
    except ImageNotFound:
        return False


def status(engine: eng.Engine) -> list[dict[str, Any]]:
    """``docker images`` for the lab's images: tag, present, id, size."""
    from docker.errors import ImageNotFound

    rows = []
    for image in IMAGES:
        try:
            found = engine.client.images.get(image.tag)
            rows.append({"name": image.name, "tag": image.tag, "present": True,
                         "id": found.id, "size": found.attrs.get("Size", 0),
                         "summary": image.summary})
        except ImageNotFound:
            rows.append({"name": image.name, "tag": image.tag, "present": False, "id": "",
                         "size": 0, "summary": image.summary})
    return rows


def build(image: ImageSpec, engine: eng.Engine, log: Log | None = None) -> str:
    """Build one image, streaming the engine's output to ``log``. Returns the image id."""
    from docker.errors import APIError

    context = IMAGES_DIR / image.context
    if not (context / "Dockerfile").exists():
        raise ImageBuildError(
            f"{context}/Dockerfile is missing: lab images build from a Dockyard checkout "
            "(`pip install -e .` in the repository)."
        )
    if not present(engine, image.base) and local_image_name(image.base):
        build(spec(image.base), engine, log)
    if not present(engine, image.base):
        raise ImageBuildError(
            f"{image.tag} starts FROM {image.base}, which is not on this engine, and Dockyard "
            f"does not pull during a build. Run `docker pull {image.base}` where a registry is "
            "reachable, or load it from a tarball (`docker load -i FILE`)."
        )
    image_id = ""
    try:
        stream = engine.client.api.build(
            path=str(context), tag=image.tag, buildargs=image.buildargs, rm=True,
            labels=eng.labels(eng.IMAGES_LAB, f"image:{image.name}"), decode=True,
            pull=False, timeout=900,
        )
        for chunk in stream:
            if "error" in chunk:
                raise ImageBuildError(f"building {image.tag} failed: {chunk['error'].strip()}")
            line = str(chunk.get("stream", "")).strip()
            if line and log:
                log(line)
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
    except APIError as exc:
        raise ImageBuildError(f"building {image.tag} failed: {exc.explanation or exc}") from exc
    return image_id or engine.client.images.get(image.tag).id


def ensure(names: Iterable[str], engine: eng.Engine | None = None, log: Log | None = None) -> None:
    """Build each named lab image that is not on the engine yet."""
    engine = engine or eng.connect()
    for name in names:
        image = spec(name)
        if not present(engine, image.tag):
            if log:
                log(f"building {image.tag} ...")
            build(image, engine, log)
