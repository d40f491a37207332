"""Lambda code assets built on this machine, without Docker.

`python_lambda_code(recipe)` returns a `lambda.Code` whose bundling runs `pip install` for the
function's Linux runtime and architecture (`--platform manylinux... --only-binary=:all:
--python-version X.Y`) into the asset directory, then copies the listed source files next to the
installed packages. The Docker image named in the bundling options is never started: local
bundling either succeeds or raises `BundlingError`, so CDK never falls back to Docker.

The asset hash is computed here from everything that goes into the bundle (the recipe, the
requirement and constraint files, every source file), so an unchanged bundle is not rebuilt and a
change to any input, including a shared `app/` module, produces a new asset and a new Lambda version.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

# Bump when the bundling procedure itself changes, so every asset is rebuilt once.
BUNDLING_FORMAT = "pip-local-1"
# Wheels the Lambda Python 3.12+ runtimes (Amazon Linux 2023, glibc 2.34) can load, newest last.
_MANYLINUX_TAGS = ("manylinux2014", "manylinux_2_28", "manylinux_2_34")
_WHEEL_ARCHITECTURE = {"arm64": "aarch64", "x86_64": "x86_64"}
PIP_TIMEOUT_SECONDS = 900


class BundlingError(RuntimeError):
    """Local bundling failed; the message says what to fix (CDK must not fall back to Docker)."""


@dataclass(frozen=True)
class SourceFile:
    """One file of the bundle: `source` on this machine, `target` relative to the bundle root."""

    source: Path
    target: str


@dataclass(frozen=True)
class PythonBundle:
    """What goes into one Lambda bundle, and for which runtime and architecture."""

    name: str
    runtime: lambda_.Runtime
    architecture: lambda_.Architecture
    requirements: Path
    constraints: Path | None
    files: tuple[SourceFile, ...]

    @property
    def python_version(self) -> str:
        return self.runtime.name.removeprefix("python")

    @property
    def platforms(self) -> tuple[str, ...]:
        machine = _WHEEL_ARCHITECTURE[self.architecture.name]
        return tuple(f"{tag}_{machine}" for tag in _MANYLINUX_TAGS)

    def pip_command(self, output_dir: str) -> list[str]:
        command = [
            sys.executable, "-m", "pip", "install",
            "--quiet", "--disable-pip-version-check", "--no-input", "--no-compile",
            "--only-binary=:all:", "--implementation", "cp", "--python-version", self.python_version,
        ]
        for platform in self.platforms:
            command += ["--platform", platform]
        command += ["--target", output_dir, "--requirement", str(self.requirements)]
        if self.constraints is not None:
            command += ["--constraint", str(self.constraints)]
        return command

    def fingerprint(self) -> str:
        """sha256 of the recipe and of every input file's path and content."""
        digest = hashlib.sha256()
        recipe = [BUNDLING_FORMAT, self.name, self.python_version, *self.platforms]
        digest.update("\0".join(recipe).encode())
        inputs = [*_requirement_files(self.requirements)]
        if self.constraints is not None:
            inputs.append(self.constraints)
        for path in inputs:
            digest.update(f"\0requirements:{path.name}\0".encode())
            digest.update(_read(path))
        for file in sorted(self.files, key=lambda item: item.target):
            digest.update(f"\0file:{file.target}\0".encode())
            digest.update(_read(file.source))
        return digest.hexdigest()


@jsii.implements(cdk.ILocalBundling)
class PipLocalBundling:
    """Builds a `PythonBundle` into CDK's output directory with this machine's pip."""

    def __init__(self, bundle: PythonBundle) -> None:
        self._bundle = bundle

    def try_bundle(self, output_dir: str, options: cdk.BundlingOptions) -> bool:
        """Install the requirements, then copy the sources; `options` (Docker settings) are unused.

        Returns True or raises `BundlingError`: returning False would make CDK try Docker.
        """
        bundle = self._bundle
        command = bundle.pip_command(output_dir)
        try:
            result = subprocess.run(  # noqa: S603 - fixed argv: this interpreter's pip
                command, capture_output=True, text=True, check=False, timeout=PIP_TIMEOUT_SECONDS
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise BundlingError(f"{bundle.name}: pip could not run: {error}") from error
        if result.returncode != 0:
            raise BundlingError(
                f"{bundle.name}: pip install for Python {bundle.python_version} on "
                f"{', '.join(bundle.platforms)} failed (a dependency without a wheel for that "
                f"platform?):\n{result.stderr.strip()[-3000:]}"
            )
        output = Path(output_dir)
        # Console scripts point at this machine's interpreter; they are useless in Lambda.
        shutil.rmtree(output / "bin", ignore_errors=True)
        for file in bundle.files:
            target = output / file.target
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file.source, target)
        return True


def python_lambda_code(bundle: PythonBundle) -> lambda_.Code:
    """The function code for `bundle`, bundled locally (no Docker), hashed from its inputs."""
    missing = [str(file.source) for file in bundle.files if not file.source.is_file()]
    if not bundle.requirements.is_file():
        missing.append(str(bundle.requirements))
    if missing:
        raise BundlingError(f"{bundle.name}: missing bundle inputs: {', '.join(missing)}")
    return lambda_.Code.from_asset(
        str(bundle.requirements.parent),
        asset_hash=bundle.fingerprint(),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        bundling=cdk.BundlingOptions(
            # Never started: local bundling succeeds or raises (see module docstring).
            image=bundle.runtime.bundling_image,
            local=PipLocalBundling(bundle),
        ),
    )


def python_files(directory: Path, *, under: str = "") -> tuple[SourceFile, ...]:
    """The `*.py` files directly in `directory`, placed under `under/` in the bundle."""
    prefix = f"{under.rstrip('/')}/" if under else ""
    return tuple(SourceFile(path, f"{prefix}{path.name}") for path in sorted(directory.glob("*.py")))


def package_tree(
    package_dir: Path, *, target: str, exclude: Iterable[str] = ()
) -> tuple[SourceFile, ...]:
    """Every file of a package directory (caches skipped), placed under `target/` in the bundle.

    `exclude` names top-level entries of the package to leave out (e.g. local-only tooling).
    """
    excluded = set(exclude)
    files = []
    for path in sorted(package_dir.rglob("*")):
        relative = path.relative_to(package_dir)
        if not path.is_file() or relative.parts[0] in excluded:
            continue
        if any(part == "__pycache__" or part.startswith(".") for part in relative.parts):
            continue
        if path.suffix == ".pyc":
            continue
        files.append(SourceFile(path, f"{target}/{relative.as_posix()}"))
    return tuple(files)


def _requirement_files(requirements: Path) -> list[Path]:
    """`requirements` and every file it includes with `-r` (recursively), in order."""
    found = [requirements]
    for line in requirements.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) == 2 and words[0] in ("-r", "--requirement"):
            found += _requirement_files((requirements.parent / words[1]).resolve())
    return found


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise BundlingError(f"cannot read bundle input {path}: {error}") from error
