"""The one configuration model: ``subsidyhub.yaml``.

Every component (hub plugin, service, CLI, benchmarks) reads its settings through
:func:`load_settings`, so a key means the same everywhere. Validation happens once, at load;
an error names the file, the key (``profiles[1].gpus.type``), the bad value and what is allowed,
so an admin can fix it without reading code. Money in the file is written in currency units
(``36.00``) and converted to integer micro-units here.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from subsidyhub import limits
from subsidyhub.catalog import (
    Catalog,
    CatalogError,
    CatalogImage,
    load_catalog,
    minimum_driver_major,
)
from subsidyhub.errors import InvalidInput
from subsidyhub.money import AmountError, bp_from_fraction, parse_amount, to_decimal_string
from subsidyhub.slugs import ProjectSlug, Slug
from subsidyhub.yamlfile import read_yaml

CONFIG_ENV = "SUBSIDYHUB_CONFIG"
DATA_DIR_ENV = "SUBSIDYHUB_DATA_DIR"
# Wins over ``database_url``: deployments keep the URL (with its password) in a secret, not the file.
DATABASE_URL_ENV = "SUBSIDYHUB_DATABASE_URL"
DEFAULT_CONFIG = Path(__file__).with_name("default_config.yaml")


class ConfigError(Exception):
    """A configuration problem, phrased for the admin who edits the file."""

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source, self.key, self.message = source, key, message
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")


def _money(value: Any) -> int:
    """YAML numbers arrive as float or int; their text form is the decimal the admin wrote."""
    if isinstance(value, bool):
        raise ValueError("must be an amount such as 36.00")
    if isinstance(value, float):
        value = repr(value)
    try:
        return parse_amount(value)
    except AmountError as error:
        raise ValueError(str(error)) from None


def _fraction_bp(value: Any) -> int:
    if isinstance(value, float):
        value = repr(value)
    try:
        return bp_from_fraction(value)
    except AmountError as error:
        raise ValueError(str(error)) from None


Micro = Annotated[int, BeforeValidator(_money)]
FractionBP = Annotated[int, BeforeValidator(_fraction_bp)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Metering(Strict):
    interval_seconds: float = Field(60, gt=0, le=3600, description="Seconds between charges.")
    min_start_minutes: Decimal = Field(
        Decimal(15),
        gt=0,
        le=1440,
        description="A spawn needs subsidy for this many minutes of the profile; this is held.",
    )
    warn_fractions: tuple[Decimal, ...] = Field(
        (Decimal("0.20"), Decimal("0.10"), Decimal("0.05")),
        description="Warn when what is left falls below these fractions of the allocation.",
    )
    warn_minutes_before_stop: Decimal = Field(
        Decimal(30), ge=0, description="Warn this many minutes before a scheduled stop."
    )
    reconcile_seconds: float = Field(
        300, gt=0, le=86400, description="Seconds between reconciliations with the hub's servers."
    )
    admin_stop_grace_seconds: float = Field(
        20,
        ge=0,
        le=600,
        description="After an admin stops a server (charges end at once), the seconds its user "
        "is given, told why in JupyterLab, to save their work before the hub stops it.",
    )

    @property
    def min_start_ms(self) -> int:
        return int(self.min_start_minutes * 60_000)


class Prices(Strict):
    cpu_core: Micro = Field(0, description="List price per CPU core-hour.")
    memory_gib: Micro = Field(0, description="List price per GiB-hour of memory.")
    gpu: dict[Slug, Micro] = Field(default_factory=dict, description="List price per GPU-hour.")


class GpuRequest(Strict):
    type: Slug
    count: int = Field(1, ge=1, le=64)


class Profile(Strict):
    slug: Slug
    display_name: str = Field(min_length=1)
    description: str = ""
    cpu: Decimal = Field(gt=0, le=1024)
    memory_gib: Decimal = Field(gt=0, le=16384)
    gpus: GpuRequest | None = None
    image: str | None = None

    @property
    def gpu_count(self) -> int:
        return self.gpus.count if self.gpus else 0

    @property
    def gpu_type(self) -> str | None:
        return self.gpus.type if self.gpus else None


class _DefaultsBase(Strict):
    """Quotas and limits a new project starts with; each can be changed per project.

    One field per declaration in :mod:`subsidyhub.limits`, checked by that declaration.
    """

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max_gpus" in data:
            raise ValueError(
                "max_gpus was renamed project_max_gpus (GPUs the whole project may use at once)"
            )
        return data

    def given(self) -> dict[str, Any]:
        """The defaults that are set, by limit name, as written in the config."""
        return {name: value for name, value in self if value is not None}


# mypy cannot match a ``**`` mapping of field definitions to create_model's overloads.
Defaults = create_model(  # type: ignore[call-overload]
    "Defaults",
    __base__=_DefaultsBase,
    **{limit.name: limits.field(limit) for limit in limits.LIMITS},
)


class Local(Strict):
    """The embedded default's spawner: local processes on this machine."""

    gpus: tuple[str, ...] | None = Field(
        None, description="GPU ids to hand out exclusively; unset: every GPU NVML finds."
    )


class KubernetesGpuType(Strict):
    """How one GPU type of ``prices.gpu`` is requested on Kubernetes."""

    resource: str = Field(
        "nvidia.com/gpu",
        pattern=r"^[a-z0-9.-]+/[a-zA-Z0-9._-]+$",
        description="Extended resource per GPU: nvidia.com/gpu, or a MIG slice such as nvidia.com/mig-1g.10gb.",
    )
    node_label_value: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$",
        description="Value of kubernetes.gpu_node_label on nodes with this GPU (e.g. NVIDIA-H800). "
        "Required: without it a pod asking for this type could land on a node with another GPU.",
    )


class Toleration(Strict):
    key: str = Field(min_length=1, description="Taint key, e.g. nvidia.com/gpu.")
    operator: Literal["Exists", "Equal"] = Field("Exists", description="Exists or Equal.")
    value: str | None = Field(None, description="Taint value (operator Equal only).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        "NoSchedule", description="Taint effect; unset: every effect."
    )


class Kubernetes(Strict):
    """Settings of ``backend: kubernetes`` (KubeSpawner; see docs/deploy-kubernetes.md)."""

    namespace: str | None = Field(
        None, description="Namespace of user pods; unset: the hub's own namespace."
    )
    gpu_node_label: str = Field(
        "nvidia.com/gpu.product",
        min_length=1,
        description="Node label whose value selects the node pool of a GPU type; CPU pods "
        "require nodes without it.",
    )
    driver_major_label: str | None = Field(
        None,
        min_length=1,
        description="Node label holding the NVIDIA driver's major version (GPU feature "
        "discovery: nvidia.com/cuda.driver.major); set: GPU pods need a driver new enough for "
        "their image's CUDA (e.g. 580+ for CUDA 13); unset: no such requirement.",
    )
    gpu_types: dict[Slug, KubernetesGpuType] = Field(
        default_factory=dict, description="Resource and node label value per GPU type."
    )
    gpu_tolerations: tuple[Toleration, ...] = Field(
        (Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"),),
        description="Tolerations GPU pods get (GPU nodes are usually tainted); CPU pods get none.",
    )
    cpu_node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node selector of CPU-only profiles."
    )
    guarantee_fraction: Decimal = Field(
        Decimal(1),
        gt=0,
        le=1,
        description="CPU and memory guarantees as a share of the limits; 1 gives Guaranteed QoS.",
    )
    shm_fraction: Decimal = Field(
        Decimal("0.5"),
        ge=0,
        le=1,
        description="Size of the memory-backed /dev/shm as a share of the profile's memory; 0: none.",
    )
    capacity_from_nodes: bool = Field(
        False,
        description="Count each GPU type's capacity from the cluster's schedulable, ready nodes "
        "(allocatable of the type's resource on nodes with its label value), refreshed every "
        "capacity_refresh_seconds; gpu_capacity stays the fallback. Needs read access to nodes "
        "(the subsidyhub chart's nodeCapacity.enabled).",
    )
    capacity_refresh_seconds: float = Field(
        60, ge=5, le=3600, description="Seconds between reads of the nodes' GPUs."
    )
    api_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="The Kubernetes API server; unset: the cluster's own (in-cluster service "
        "account).",
    )


class Docker(Strict):
    """Settings of ``backend: docker`` (DockerSpawner on one host; see docs/deploy-single-host.md)."""

    image: str = Field(
        "quay.io/jupyter/base-notebook:latest",
        min_length=1,
        description="Image of profiles that name none.",
    )
    gpus: tuple[str, ...] | None = Field(
        None, description="Host GPU ids to hand out exclusively; unset: every GPU NVML finds."
    )
    network: str | None = Field(
        None,
        description="Docker network the containers join to reach the hub; unset: bridge; "
        "host: the host's network, servers on 127.0.0.1.",
    )
    volume_template: str = Field(
        "subsidyhub-user-{username}",
        min_length=1,
        description="Name of each user's volume; {username} and {servername} are expanded.",
    )
    home_path: str = Field(
        "/home/jovyan", pattern=r"^/", description="Where the user's volume is mounted."
    )
    shm_fraction: Decimal = Field(
        Decimal("0.5"),
        ge=0,
        le=1,
        description="Size of /dev/shm as a share of the profile's memory; 0: Docker's default.",
    )


class SsoGroup(Strict):
    """One identity-provider group and the project membership it grants."""

    group: str = Field(min_length=1, max_length=255, description="Group name as the IdP sends it.")
    project: ProjectSlug = Field(description="Slug of the SubsidyHub project.")
    role: Literal["member", "manager"] = Field("member", description="member or manager.")


class Sso(Strict):
    """Identity-provider groups to project memberships, synced at every login (docs/authentication.md)."""

    groups: tuple[SsoGroup, ...] = Field(
        (), description="Mappings; a user's groups imply memberships, the highest role wins."
    )
    remove_unlisted: bool = Field(
        True,
        description="Remove SSO-made memberships that the user's groups no longer imply.",
    )


class Hub(Strict):
    """How the hub plugin talks to the service (docs/operations.md, "Service outages")."""

    service_timeout_seconds: float = Field(
        10,
        gt=0,
        le=300,
        description="How long the hub waits for the service's answer. An admission carries "
        "the same instant as its deadline: one the service could not commit by then is "
        "refused, so a spawn the hub gave up on is never admitted.",
    )
    outbox_dir: Path | None = Field(
        None,
        description="Where the hub keeps stop notices the service has not received yet (they "
        "survive a hub restart); unset: the hub's data directory (subsidyhub up: beside "
        "jupyterhub.sqlite; z2jh: /srv/jupyterhub, the hub database's volume).",
    )


class Queue(Strict):
    """The wait for a GPU when none of its type is free (docs/gpu-capacity.md)."""

    order: Literal["fifo", "fair_share"] = Field(
        "fifo",
        description="fifo: first come, first served within priority classes. fair_share: "
        "projects that used less than their share of the GPU type in the last 7 days first.",
    )
    offer_minutes: Decimal = Field(
        Decimal(10),
        gt=0,
        le=1440,
        description="How long a freed GPU is held for the head of the queue before it passes on.",
    )
    priorities: dict[Literal["research", "course"], Annotated[int, Field(ge=0, le=9)]] = Field(
        default_factory=dict,
        description="Priority class by project kind (0-9, higher first; absent: 0).",
    )
    max_waiting: int = Field(
        10_000, ge=1, le=1_000_000, description="Most entries waiting for one GPU type at once."
    )

    @property
    def offer_ms(self) -> int:
        return int(self.offer_minutes * 60_000)


class Smtp(Strict):
    """Email for what people must not miss while no page of theirs is open: a GPU held for
    them (docs/gpu-capacity.md). Off while ``host`` is unset."""

    host: str | None = Field(None, max_length=255, description="SMTP server; unset: no email.")
    port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    starttls: bool = Field(True, description="Upgrade the connection with STARTTLS.")
    username: str | None = Field(None, max_length=255, description="SMTP login, if it needs one.")
    password_file: Path | None = Field(
        None, description="File holding the SMTP password (never in this file)."
    )
    from_address: str = Field(
        "subsidyhub@localhost", max_length=320, description="The From: address of the emails."
    )
    timeout_seconds: float = Field(10, gt=0, le=120, description="How long to wait for it.")


class IdleGpu(Strict):
    """GPU utilisation per running server, and what happens to a server whose GPUs sit idle
    (docs/idle-gpus.md): sampled, warned in JupyterLab, stopped with the reason ``idle_gpu``."""

    source: Literal["auto", "nvml", "prometheus", "exporter", "off"] = Field(
        "auto",
        description="Where utilisation is read: nvml (this host's GPUs, local and docker "
        "backends), prometheus (dcgm-exporter's series through a Prometheus HTTP API), exporter "
        "(dcgm-exporter's own /metrics endpoints), off. auto: nvml on local and docker; on "
        "kubernetes prometheus when prometheus_url is set, else exporter when exporter_urls "
        "are, else off.",
    )
    sample_seconds: float = Field(
        30, gt=0, le=3600, description="Seconds between samples of every GPU server."
    )
    threshold_percent: int = Field(
        5,
        ge=0,
        le=100,
        description="A server is idle while every one of its GPUs is below this utilisation "
        "(memory held does not count as work).",
    )
    stop_after_minutes: Decimal = Field(
        Decimal(30),
        gt=0,
        le=10080,
        description="Minutes of idle GPUs before the server is stopped, for projects without "
        "their own idle_gpu_hours.",
    )
    warn_before_minutes: Decimal = Field(
        Decimal(10),
        ge=0,
        le=10080,
        description="Minutes before the stop that JupyterLab warns, offering Keep it once.",
    )
    window_minutes: Decimal = Field(
        Decimal(60),
        gt=0,
        le=1440,
        description="Minutes of samples kept per server for the lab's utilisation plot.",
    )
    prometheus_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="Prometheus HTTP API base (e.g. http://prometheus:9090) where "
        "dcgm-exporter's DCGM_FI_DEV_GPU_UTIL and DCGM_FI_DEV_FB_USED are scraped.",
    )
    exporter_urls: tuple[Annotated[str, Field(pattern=r"^https?://")], ...] = Field(
        (), description="dcgm-exporter metrics endpoints (e.g. http://node-1:9400/metrics)."
    )
    pod_label: str = Field(
        "pod",
        min_length=1,
        max_length=100,
        description="The series label naming the pod that uses a GPU (exported_pod where "
        "Prometheus renamed dcgm-exporter's own pod label).",
    )
    namespace_label: str = Field(
        "namespace",
        min_length=1,
        max_length=100,
        description="The series label naming the pod's namespace (exported_namespace likewise).",
    )
    timeout_seconds: float = Field(
        5, gt=0, le=60, description="How long one read of Prometheus or an exporter may take."
    )

    @model_validator(mode="after")
    def _source_reachable(self) -> IdleGpu:
        if self.source == "prometheus" and not self.prometheus_url:
            raise ValueError("source prometheus needs prometheus_url (the Prometheus HTTP API)")
        if self.source == "exporter" and not self.exporter_urls:
            raise ValueError("source exporter needs exporter_urls (dcgm-exporter's /metrics)")
        return self

    @property
    def sample_ms(self) -> int:
        return int(self.sample_seconds * 1000)

    @property
    def stop_after_ms(self) -> int:
        return int(self.stop_after_minutes * 60_000)

    @property
    def warn_before_ms(self) -> int:
        return int(self.warn_before_minutes * 60_000)

    @property
    def window_ms(self) -> int:
        return int(self.window_minutes * 60_000)


class Scheme(Strict):
    """The subsidy scheme's rules for applications and grants (docs/applications.md)."""

    max_subsidy_rate: FractionBP = Field(
        9000, description="The highest subsidy share an approval may give (at most 0.90)."
    )
    max_period_months: int = Field(
        60, ge=1, le=120, description="The longest period a grant may be applied for, in months."
    )
    plan_margin_percent: int = Field(
        20,
        ge=1,
        le=100,
        description="Warn a project's managers and the admins when its subsidy spent so far is "
        "more than this share over (it will run out early) or under (subsidy at risk of "
        "going unused) its burn plan to date.",
    )

    @field_validator("max_subsidy_rate")
    @classmethod
    def _scheme_cap(cls, bp: int) -> int:
        if bp > 9000:
            raise ValueError(f"{bp / 100:.2f}% exceeds the scheme's 90% cap; use at most 0.90")
        return bp


class Bounds(Strict):
    """The largest amounts one entry may carry: a typo must not become public money.

    Checked wherever an amount enters (API, CLI, admin page, config, rosters), by the ledger.
    """

    max_amount: Micro = Field(
        parse_amount("100000000"),
        description="Largest allocation, top-up or correction one entry may add or remove.",
    )
    max_price_per_hour: Micro = Field(
        parse_amount("10000"),
        description="Highest list price per resource-hour (CPU core, GiB or GPU).",
    )
    price_change_factor: Decimal = Field(
        Decimal(10),
        ge=1,
        le=1000,
        description="A new price more than this many times the price in force, or less than "
        "its inverse, needs an explicit confirmation.",
    )

    @field_validator("max_amount", "max_price_per_hour")
    @classmethod
    def _positive(cls, micro: int) -> int:
        if micro <= 0:
            raise ValueError("must be more than 0")
        return micro


class Settings(Strict):
    currency: str = Field("HKD", pattern=r"^[A-Z]{3}$")
    bounds: Bounds = Bounds()
    subsidy_rate: FractionBP = Field(7000, description="Default subsidy share for new projects.")
    database_url: str | None = None
    data_dir: Path | None = None
    metering: Metering = Metering()
    prices: Prices = Prices()
    profiles: tuple[Profile, ...] = ()
    image_catalog: Path | None = Field(
        None,
        description="Image catalog that profiles' `image` must name (relative to this file); unset: the one shipped with SubsidyHub.",
    )
    defaults: Defaults = Defaults()
    local: Local = Local()
    backend: Literal["local", "docker", "kubernetes"] = Field(
        "local",
        description="Where servers run: local processes, Docker containers, Kubernetes pods.",
    )
    kubernetes: Kubernetes = Kubernetes()
    docker: Docker = Docker()
    unadmitted_servers: Literal["stop", "admit", "ignore"] = "stop"
    fail_open: bool = Field(False, description="Admit spawns when the service is unreachable.")
    hub: Hub = Hub()
    sso: Sso = Sso()
    centre_name: str = Field(
        "SubsidyHub", min_length=1, max_length=200, description="Centre name printed on statements."
    )
    gpu_capacity: dict[Slug, Annotated[int, Field(ge=0, strict=True)]] = Field(
        default_factory=dict,
        description="GPUs of each priced type the centre runs: admission keeps within it, "
        "and the utilisation report divides by it.",
    )
    queue: Queue = Queue()
    smtp: Smtp = Smtp()
    idle_gpu: IdleGpu = IdleGpu()
    scheme: Scheme = Scheme()
    _catalog: Catalog | None = PrivateAttr(None)

    @field_validator("subsidy_rate")
    @classmethod
    def _rate_cap(cls, bp: int) -> int:
        if bp > 9000:
            raise ValueError(f"{bp / 100:.2f}% exceeds the scheme's 90% cap; use at most 0.90")
        return bp

    @field_validator("gpu_capacity")
    @classmethod
    def _capacity_priced(cls, capacity: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        # A capacity for an unpriced type is a typo: no session could ever use it.
        priced = info.data["prices"].gpu if "prices" in info.data else {}
        for gpu_type in capacity:
            if gpu_type not in priced:
                allowed = ", ".join(sorted(priced)) or "(none priced)"
                raise ValueError(f"{gpu_type!r} has no price in prices.gpu; allowed: {allowed}")
        return capacity

    @model_validator(mode="after")
    def _prices_bounded(self) -> Settings:
        ceiling = self.bounds.max_price_per_hour
        priced = {"cpu_core": self.prices.cpu_core, "memory_gib": self.prices.memory_gib}
        priced |= {f"gpu.{name}": price for name, price in self.prices.gpu.items()}
        for key, price in priced.items():
            if price > ceiling:
                raise ValueError(
                    f"prices.{key}: {to_decimal_string(price)} per hour is more than "
                    f"bounds.max_price_per_hour ({to_decimal_string(ceiling)})"
                )
        return self

    @model_validator(mode="after")
    def _profiles_consistent(self) -> Settings:
        seen: set[str] = set()
        for index, profile in enumerate(self.profiles):
            if profile.slug in seen:
                raise ValueError(f"profiles[{index}].slug: {profile.slug!r} appears twice")
            seen.add(profile.slug)
            if profile.gpus and profile.gpus.type not in self.prices.gpu:
                allowed = ", ".join(sorted(self.prices.gpu)) or "(none priced)"
                raise ValueError(
                    f"profiles[{index}].gpus.type: {profile.gpus.type!r} has no price in "
                    f"prices.gpu; allowed: {allowed}"
                )
            if self.backend == "kubernetes" and profile.image is None:
                raise ValueError(
                    f"profiles[{index}].image: backend kubernetes needs a catalog image "
                    "(name:tag from images/catalog.yaml) for every profile"
                )
            if (
                self.backend == "kubernetes"
                and profile.gpus
                and profile.gpus.type not in self.kubernetes.gpu_types
            ):
                raise ValueError(
                    f"profiles[{index}].gpus.type: {profile.gpus.type!r} is not in "
                    "kubernetes.gpu_types; backend kubernetes needs its resource and node label "
                    "value there (see docs/deploy-kubernetes.md)"
                )
        return self

    def profile(self, slug: str) -> Profile:
        for profile in self.profiles:
            if profile.slug == slug:
                return profile
        options = ", ".join(p.slug for p in self.profiles) or "(none configured)"
        raise KeyError(f"No such profile: {slug}. Options include: {options}")

    def catalog_image(self, profile: Profile) -> CatalogImage | None:
        """The catalog entry of a profile's image (what the spawn page describes), if any."""
        if profile.image is None or self._catalog is None:
            return None
        return self._catalog.find(profile.image)

    def profile_image(self, profile: Profile) -> str | None:
        """The pull reference (``<registry>/<name>:<tag>``) of a profile's catalog image, if any.

        Set by :func:`parse_settings`, which checked the image against the catalog.
        """
        if profile.image is None or self._catalog is None:
            return profile.image
        image = self._catalog.find(profile.image)
        return self._catalog.reference(image) if image else profile.image

    def gpu_capacity_of(self, gpu_type: str) -> tuple[int | None, str]:
        """GPUs of ``gpu_type`` the centre runs, and which key says so: ``gpu_capacity``,
        else the host pool of the backend in force (``local.gpus``, ``docker.gpus``) when
        every GPU profile uses that one type; ``(None, "unknown")`` otherwise."""
        if gpu_type in self.gpu_capacity:
            return self.gpu_capacity[gpu_type], "gpu_capacity"
        pool = {"local": self.local.gpus, "docker": self.docker.gpus}.get(self.backend)
        profile_types = {p.gpu_type for p in self.profiles if p.gpu_type}
        if pool is not None and profile_types == {gpu_type}:
            return len(pool), f"{self.backend}.gpus"
        return None, "unknown"

    def idle_gpu_source(self) -> str:
        """The utilisation source in force: ``idle_gpu.source``, with ``auto`` resolved."""
        idle = self.idle_gpu
        if idle.source != "auto":
            return idle.source
        if self.backend != "kubernetes":
            return "nvml"
        if idle.prometheus_url:
            return "prometheus"
        return "exporter" if idle.exporter_urls else "off"

    def resolved_data_dir(self) -> Path:
        """``SUBSIDYHUB_DATA_DIR`` (what ``--data-dir`` sets), else ``data_dir``, else ./.subsidyhub."""
        if os.environ.get(DATA_DIR_ENV):
            return Path(os.environ[DATA_DIR_ENV]).resolve()
        return (self.data_dir or Path(".subsidyhub")).resolve()

    def resolved_database_url(self) -> str:
        """``SUBSIDYHUB_DATABASE_URL``, else ``database_url``, else SQLite in the data dir."""
        if os.environ.get(DATABASE_URL_ENV):
            return os.environ[DATABASE_URL_ENV]
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir() / 'subsidyhub.sqlite'}"


def _key(loc: tuple[Any, ...]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def parse_settings(data: Any, source: str) -> Settings:
    """Validate a mapping; raise :class:`ConfigError` naming ``source`` and the first bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            source, "", "the file must hold a mapping of keys (currency:, prices:, …)"
        )
    try:
        settings = Settings.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        key = _key(tuple(first["loc"]))
        if first["type"] == "extra_forbidden":
            message = f"unknown key; allowed here: {_allowed_keys(tuple(first['loc'][:-1]))}"
        elif ": " in message and message.split(": ", 1)[0].startswith(("profiles[", "prices.")):
            key, message = message.split(": ", 1)
        elif "input" in first and first["type"] not in ("missing",):
            message = f"{message} (got {first['input']!r})"
        raise ConfigError(source, key, message) from None
    _check_profile_images(settings, source)
    for name, value in settings.defaults.given().items():
        try:
            limits.get(name).parse(value, settings)
        except InvalidInput as error:
            raise ConfigError(source, f"defaults.{name}", error.message) from None
    return settings


def _check_profile_images(settings: Settings, source: str) -> None:
    """Every profile's ``image`` must be a usable catalog image (not unknown, not retired).

    Checked after the model so the catalog is only read when some profile names an image.
    """
    if not any(profile.image for profile in settings.profiles):
        return
    path = settings.image_catalog
    if path is not None and not path.is_absolute() and Path(source).is_file():
        path = Path(source).parent / path
    try:
        catalog = load_catalog(path)
    except CatalogError as error:
        raise ConfigError(source, "image_catalog", str(error)) from None
    for index, profile in enumerate(settings.profiles):
        if profile.image is None:
            continue
        try:
            image = catalog.check_usable(profile.image, profile.gpu_type)
            if profile.gpus and settings.kubernetes.driver_major_label:
                minimum_driver_major(image.cuda)
        except ValueError as error:
            raise ConfigError(source, f"profiles[{index}].image", str(error)) from None
    settings._catalog = catalog


def _allowed_keys(loc: tuple[Any, ...]) -> str:
    model: Any = Settings
    for part in loc:
        if isinstance(part, int) or part not in model.model_fields:
            continue  # a list index or a mapping key (kubernetes.gpu_types.<type>)
        annotation = model.model_fields[part].annotation
        args = getattr(annotation, "__args__", ())
        model = next(
            (a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)),
            None,
        )
        if model is None:
            return "(see docs/configuration.md)"
    return ", ".join(model.model_fields)


def config_path(explicit: str | Path | None = None) -> Path:
    """Which file is in force: the argument, then ``SUBSIDYHUB_CONFIG``, then the embedded default."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return DEFAULT_CONFIG


def load_settings(path: str | Path | None = None) -> Settings:
    """Read and validate the config in force (see :func:`config_path`)."""
    source = config_path(path)
    data = read_yaml(source, ConfigError)
    return parse_settings(data, str(source))
