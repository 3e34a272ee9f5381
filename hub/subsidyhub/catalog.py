"""The notebook image catalog: which images exist, what is in them, and which may be used.

The centre supports few images, pinned and tested (``images/``). ``images/catalog.yaml`` is the
one list of them: profiles name an image from it as ``name:tag``, the spawn page shows its
description and packages, and ``tests/images`` checks it against the images' locked
requirements. This module loads and validates that file and answers "may a profile use this
image?" so that an unknown or retired image fails at config load, with the key and the valid
choices, rather than at spawn time on a GPU node.

Where the catalog is read from: ``image_catalog`` in ``subsidyhub.yaml`` if set (a centre's own
list, without rebuilding the package), else the copy shipped inside the wheel
(``subsidyhub/images_catalog.yaml``, force-included by pyproject's hatch config), else — in a
source checkout or editable install — the repository's ``images/catalog.yaml``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from subsidyhub.slugs import Slug
from subsidyhub.yamlfile import read_yaml

PACKAGED_CATALOG = Path(__file__).with_name("images_catalog.yaml")
SOURCE_CATALOG = Path(__file__).resolve().parents[2] / "images" / "catalog.yaml"

Status = Literal["current", "deprecated", "retired"]


class CatalogError(Exception):
    """A problem in a catalog file, phrased for the admin who edits it."""

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source, self.key, self.message = source, key, message
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")


def _version(value: Any) -> str:
    """YAML reads ``3.10`` as the float 3.1; refuse floats so a version is never silently changed."""
    if isinstance(value, float | bool):
        raise ValueError(f"write versions as strings in quotes, e.g. '{value}'")
    if isinstance(value, int):
        return str(value)
    return value


Version = Annotated[str, BeforeValidator(_version), Field(pattern=r"^[0-9][0-9A-Za-z.+!-]*$")]
Tag = Annotated[
    str, BeforeValidator(_version), Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
]
PackageName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseImage(Strict):
    image: str = Field(
        min_length=1,
        description="The operating system image it builds FROM, pinned by digest "
        "(debian:trixie-slim@sha256:…).",
    )
    os: str = Field(min_length=1, description="What that is, for people: 'Debian 13 (trixie)'.")


# The oldest NVIDIA driver branch that runs each CUDA major (NVIDIA's CUDA compatibility table:
# CUDA 12.x needs R525+ with minor-version compatibility, CUDA 13.x needs R580+).
MINIMUM_DRIVER_MAJOR = {"12": 525, "13": 580}


def minimum_driver_major(cuda: str) -> int:
    """The lowest driver major version that runs code built for CUDA ``cuda`` ("13.0")."""
    major = cuda.split(".", 1)[0]
    if major not in MINIMUM_DRIVER_MAJOR:
        known = ", ".join(f"CUDA {m}: R{d}+" for m, d in MINIMUM_DRIVER_MAJOR.items())
        raise ValueError(f"CUDA {cuda} has no known minimum driver ({known})")
    return MINIMUM_DRIVER_MAJOR[major]


class CatalogImage(Strict):
    name: Slug
    tag: Tag
    status: Status
    description: str = Field(min_length=1)
    build: str | None = Field(
        None,
        description="Folder under images/ it is built from; unset for images kept only to be named.",
    )
    parent: str | None = Field(
        None,
        description="name:tag of the catalog image it builds on (FROM); unset when it builds on "
        "the operating system image `base.image`.",
    )
    base: BaseImage
    cuda: Version = Field(
        description="CUDA major.minor the image's GPU code is built for (its framework wheels "
        "bring the runtime); it decides the lowest NVIDIA driver a GPU node needs."
    )
    cudnn: Version | None = Field(None, description="cuDNN major version, where the image has it.")
    python: Version
    packages: dict[PackageName, Version] = Field(min_length=1)
    gpu_types: tuple[Slug, ...] = Field(min_length=1)
    replaced_by: str | None = Field(
        None, description="name:tag to use instead (deprecated/retired)."
    )

    @property
    def ref(self) -> str:
        """How profiles name this image: ``name:tag``."""
        return f"{self.name}:{self.tag}"

    @model_validator(mode="after")
    def _lifecycle(self) -> CatalogImage:
        if self.status == "current" and self.replaced_by:
            raise ValueError("replaced_by: only a deprecated or retired image is replaced")
        if self.status == "retired" and not self.replaced_by:
            raise ValueError("replaced_by: a retired image must say what replaced it")
        return self


class Catalog(Strict):
    registry: str = Field(pattern=r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*$")
    images: tuple[CatalogImage, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Catalog:
        seen: set[str] = set()
        for index, image in enumerate(self.images):
            if image.ref in seen:
                raise ValueError(f"images[{index}]: {image.ref!r} appears twice")
            seen.add(image.ref)
        by_ref = {image.ref: image for image in self.images}
        for index, image in enumerate(self.images):
            parent = by_ref.get(image.parent) if image.parent else None
            if image.parent and (parent is None or parent.build is None):
                raise ValueError(
                    f"images[{index}].parent: {image.parent!r} is not an image built here"
                )
            if image.replaced_by is None:
                continue
            target = by_ref.get(image.replaced_by)
            if target is None or target.status != "current":
                raise ValueError(
                    f"images[{index}].replaced_by: {image.replaced_by!r} is not a current "
                    f"image; current images: {', '.join(self.current_refs()) or '(none)'}"
                )
        return self

    def current_refs(self) -> list[str]:
        return [image.ref for image in self.images if image.status == "current"]

    def reference(self, image: CatalogImage) -> str:
        """The full pull reference a spawner uses: ``<registry>/<name>:<tag>``."""
        return f"{self.registry}/{image.ref}"

    def find(self, ref: str) -> CatalogImage | None:
        return next((image for image in self.images if image.ref == ref), None)

    def check_usable(self, ref: str, gpu_type: str | None = None) -> CatalogImage:
        """The image a profile may use, or :class:`ValueError` saying why not and what may be.

        Deprecated images are allowed (callers warn); retired and unknown ones are not. A GPU
        profile's GPU type must be one the image supports (its CUDA build runs there).
        """
        current = ", ".join(self.current_refs()) or "(none)"
        image = self.find(ref)
        if image is None:
            raise ValueError(f"{ref!r} is not in images/catalog.yaml; current images: {current}")
        if image.status == "retired":
            raise ValueError(
                f"{ref!r} is retired; use {image.replaced_by!r} (current images: {current})"
            )
        if gpu_type is not None and gpu_type not in image.gpu_types:
            raise ValueError(
                f"{ref!r} does not support GPU type {gpu_type!r}; it supports "
                f"{', '.join(image.gpu_types)}"
            )
        return image


def _key(loc: tuple[Any, ...]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def parse_catalog(data: Any, source: str) -> Catalog:
    """Validate a mapping; raise :class:`CatalogError` naming ``source`` and the first bad key."""
    if not isinstance(data, dict):
        raise CatalogError(source, "", "the file must hold a mapping with registry: and images:")
    try:
        return Catalog.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        key = _key(tuple(first["loc"]))
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        elif re.match(r"^images\[\d+\][.\w]*: ", message):
            key, message = message.split(": ", 1)
        elif re.match(r"^\w+: ", message) and first["type"] == "value_error":
            field, message = message.split(": ", 1)
            key = f"{key}.{field}" if key else field
        elif "input" in first and first["type"] != "missing":
            message = f"{message} (got {first['input']!r})"
        raise CatalogError(source, key, message) from None


def default_catalog_path() -> Path:
    """The packaged copy in an installed wheel, else the repository's ``images/catalog.yaml``."""
    return PACKAGED_CATALOG if PACKAGED_CATALOG.is_file() else SOURCE_CATALOG


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and validate a catalog file (default: :func:`default_catalog_path`)."""
    source = Path(path) if path else default_catalog_path()
    data = read_yaml(source, CatalogError)
    return parse_catalog(data, str(source))
