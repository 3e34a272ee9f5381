# Builds SubsidyHub's notebook images with the right build args. Run from the repository root:
#   docker buildx bake -f images/docker-bake.hcl            # all current images, loaded locally
#   docker buildx bake -f images/docker-bake.hcl --push     # to REGISTRY
#   REGISTRY=registry.example.org/hpc docker buildx bake -f images/docker-bake.hcl pytorch
# Tags and versions mirror images/catalog.yaml; tests/images/test_catalog.py fails if they drift.

variable "REGISTRY" {
  default = "ghcr.io/subsidyhub"
}

variable "VCS_REF" {
  default = "unknown"
}

variable "CUDA_BASE" {
  default = "nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04"
}

group "default" {
  targets = ["base", "pytorch", "edge"]
}

target "_common" {
  platforms = ["linux/amd64"]
  args = {
    VCS_REF = VCS_REF
  }
}

target "base" {
  inherits   = ["_common"]
  context    = "images/base"
  dockerfile = "Dockerfile"
  contexts = {
    extension-src = "extensions/jupyterlab-subsidy"
    smoke         = "images/tests"
  }
  args = {
    CUDA_BASE           = CUDA_BASE
    CATALOG_REF         = "base:2026.11-cuda13.0"
    IMAGE_NAME          = "base"
    CUDA_VERSION_LABEL  = "13.0"
    CUDNN_VERSION_LABEL = "9"
  }
  tags = ["${REGISTRY}/base:2026.11-cuda13.0"]
}

target "pytorch" {
  inherits   = ["_common"]
  context    = "images/pytorch"
  dockerfile = "Dockerfile"
  # The Dockerfile's FROM names the published base; build on the one just built instead.
  contexts = {
    "ghcr.io/subsidyhub/base:2026.11-cuda13.0" = "target:base"
  }
  args = {
    BASE_IMAGE  = "ghcr.io/subsidyhub/base:2026.11-cuda13.0"
    CATALOG_REF = "pytorch:2.14-cuda13.0"
    IMAGE_NAME  = "pytorch"
  }
  tags = ["${REGISTRY}/pytorch:2.14-cuda13.0"]
}

target "edge" {
  inherits   = ["_common"]
  context    = "images/edge"
  dockerfile = "Dockerfile"
  contexts = {
    "ghcr.io/subsidyhub/pytorch:2.14-cuda13.0" = "target:pytorch"
  }
  args = {
    BASE_IMAGE  = "ghcr.io/subsidyhub/pytorch:2.14-cuda13.0"
    CATALOG_REF = "edge:2.14-cuda13.0"
    IMAGE_NAME  = "edge"
  }
  tags = ["${REGISTRY}/edge:2.14-cuda13.0"]
}
