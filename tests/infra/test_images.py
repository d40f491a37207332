"""Container images install exactly what their hashed locks list; nothing unused is installed; base
images are digest-pinned or listed below as an open item."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cdk.image_locks import IMAGES, pinned_names
from tests.conftest import REPO_ROOT

DOCKERFILES = (REPO_ROOT / "app" / "Dockerfile", REPO_ROOT / "loadtests" / "Dockerfile")
# OPEN ITEM, documented in each Dockerfile: the base image digest could not be resolved offline.
# Pinning one (`python:3.11-slim@sha256:<64 hex>`) means removing it here; a new unpinned image fails.
UNPINNED_BASE_IMAGES = {("app/Dockerfile", "python:3.11-slim"), ("loadtests/Dockerfile", "python:3.11-slim")}
# Installed without an `import` in our code, each for a stated reason.
USED_WITHOUT_IMPORT = {
    "hiredis": "redis-py loads it as its reply parser when it is installed (no import of ours)",
    "uvicorn": "the image's CMD runs it",
    "python-multipart": "FastAPI parses the OAuth2 form of POST /auth/token with it",
    "aiosqlite": "SQLAlchemy's sqlite+aiosqlite driver (local database)",
    "aws-msk-iam-sasl-signer-python": "imported as aws_msk_iam_sasl_signer",
    "pyjwt": "imported as jwt",
    "cryptography": "PyJWT loads it for ES256 (the ALB's signed x-amzn-oidc-data header, app/security/alb_oidc.py)",
    "sqlalchemy": "imported as sqlalchemy (extras in the requirement line)",
}


def _constraints() -> dict[str, str]:
    text = (REPO_ROOT / "constraints.txt").read_text()
    return {name.lower(): version for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", text, flags=re.M)}


def _requirements(path) -> dict[str, str]:
    return {name.lower(): version for name, version in
            re.findall(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)$", path.read_text(), flags=re.M)}


@pytest.mark.parametrize("image", IMAGES, ids=lambda image: image.lock.parent.name)
def test_lock_pins_every_requirement_with_a_hash_at_the_constraints_version(image) -> None:
    text = image.lock.read_text()
    locked = pinned_names(text)
    assert len(re.findall(r"--hash=sha256:[0-9a-f]{64}", text)) == len(locked) > 0
    constraints = _constraints()
    normalise = lambda name: name.replace("_", "-")  # noqa: E731
    assert {normalise(n): v for n, v in _requirements(image.requirements).items()}.items() <= {
        normalise(n): v for n, v in locked.items()}.items(), "run make image-locks"
    drift = {n: v for n, v in locked.items() if constraints.get(n, constraints.get(normalise(n))) not in (v, None)}
    assert drift == {}, "the lock and constraints.txt disagree: run make image-locks"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_images_install_only_from_their_hashed_lock(dockerfile) -> None:
    text = dockerfile.read_text()
    installs = re.findall(r"pip install[^\n]*", text)
    assert installs and all("--require-hashes" in line and "-r /tmp/requirements.lock" in line for line in installs)
    assert re.search(r"^COPY (\w+/)?requirements\.lock /tmp/requirements\.lock$", text, flags=re.M)


def test_base_images_are_digest_pinned_or_listed_as_open() -> None:
    unpinned = set()
    for dockerfile in DOCKERFILES:
        for image in re.findall(r"^FROM (\S+)", dockerfile.read_text(), flags=re.M):
            if not re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", image):
                unpinned.add((str(dockerfile.relative_to(REPO_ROOT)), image))
    assert unpinned == UNPINNED_BASE_IMAGES


def test_service_requirements_are_all_used() -> None:
    sources = "\n".join(path.read_text() for path in (REPO_ROOT / "app").rglob("*.py"))
    unused = [
        name for name in _requirements(REPO_ROOT / "app" / "requirements.txt")
        if name not in USED_WITHOUT_IMPORT
        and not re.search(rf"^\s*(from|import) {re.escape(name.replace('-', '_'))}\b", sources, flags=re.M)
    ]
    assert unused == []


SERVER_ONLY = {"uvicorn", "aiokafka", "aws-msk-iam-sasl-signer-python", "aiosqlite"}


def test_read_api_bundle_holds_only_what_the_handler_imports() -> None:
    read_api = _requirements(REPO_ROOT / "lambda" / "api" / "requirements.txt")
    assert "-r" not in (REPO_ROOT / "lambda" / "api" / "requirements.txt").read_text()
    assert not SERVER_ONLY & set(read_api)
    app = _requirements(REPO_ROOT / "app" / "requirements.txt")
    # Same pins as the app where they overlap.
    assert {name: app[name] for name in read_api if name in app} == {
        name: version for name, version in read_api.items() if name in app}


def _staged_image_context(synthesized, stack: str) -> tuple[Path, str]:
    """The build context CDK staged for the one image of `stack` (what cdk-assets sends to Docker)."""
    manifest = json.loads((synthesized.outdir / f"Sensor-{synthesized.config.name}-{stack}.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    return synthesized.outdir / image["source"]["directory"], image["source"].get("dockerFile", "Dockerfile")


def test_app_image_context_holds_the_service_and_the_contracts_but_no_local_stack(dev) -> None:
    context, dockerfile = _staged_image_context(dev, "Service")
    files = {path.relative_to(context).as_posix() for path in context.rglob("*") if path.is_file()}
    assert dockerfile == "app/Dockerfile" and dockerfile in files
    assert {"app/main.py", "app/requirements.lock", "contracts/reading.py"} <= files
    # Docker (and CDK's staging) always keep the context's own .dockerignore.
    assert {name.split("/", 1)[0] for name in files} == {"app", "contracts", ".dockerignore"}
    assert not any("devstack" in name or "__pycache__" in name for name in files)


def test_load_test_image_context_holds_the_locust_suite_only(dev) -> None:
    context, _ = _staged_image_context(dev, "LoadTest")
    files = {path.relative_to(context).as_posix() for path in context.rglob("*") if path.is_file()}
    assert {"Dockerfile", "requirements.lock", "locust/locustfile.py", "simulator/__init__.py"} <= files
    assert not any(name.startswith(("drills/", "bench/")) or "__pycache__" in name for name in files)
