"""House rules of the layout (issue 17), checked on the source text with `ast`: no module over 400 lines,
no function over 80 lines, imports only downward across the layers, no local stack in the app image.

Fast and pure Python: nothing is imported or run. Exceptions are explicit, with a reason; the known
offenders owned by another part of issue 17 carry a TODO naming the owner (17b: cdk/ and monitoring/,
17c: app/) and are removed from the lists as they are fixed.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

# Product code: every Python file outside tests/ (and outside caches, virtualenvs, node_modules, cdk.out).
SOURCE_ROOTS = ("app", "cdk", "contracts", "devstack", "environments", "lambda", "loadtests", "monitoring")
REPO_PACKAGES = frozenset({*SOURCE_ROOTS, "tests"}) - {"lambda"}  # lambda/ is not importable (a keyword)
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80

# Declarative tables: long because they list things, not because they do several jobs.
LONG_TABLES = {
    "monitoring/catalogue.py": "the alarm catalogue: one declarative entry per alarm",
    "environments/config.py": "the cdk.json configuration model: one pydantic section per stack concern",
}
LONG_MODULES_TODO: dict[str, str] = {}  # offenders being split (none today)
# Functions over the limit outside CDK construct __init__ bodies (none today).
LONG_FUNCTIONS_TODO: dict[str, str] = {}

# (importing module or package prefix, imported top-level package): allowed by design, with the reason.
IMPORT_EXCEPTIONS = {
    ("lambda/api/", "app"): "the read-only API Lambda is the app's read path: its bundle ships the app package",
    ("loadtests/locust/run.py", "devstack"): "the local launcher (make loadtest) takes free ports and stops "
    "Locust with devstack.processes; the LoadTest image never runs it (it runs locust and export_results)",
}
IMPORT_TODO: dict[tuple[str, str], str] = {}  # known upward imports being removed (none today)


@dataclass(frozen=True)
class Layer:
    """Which repository packages the modules under `prefix` must not import (`only`: the ones they may)."""

    prefix: str
    forbidden: frozenset[str] = frozenset()
    only: frozenset[str] | None = None
    stdlib_and: frozenset[str] | None = None  # third-party names allowed besides the standard library

    def violations(self, imported: str) -> bool:
        if self.stdlib_and is not None:
            return imported not in sys.stdlib_module_names and imported not in self.stdlib_and
        if imported not in REPO_PACKAGES:
            return False
        if self.only is not None:
            return imported not in self.only
        return imported in self.forbidden


LAYERS = (
    # The service runs only what it holds: no deployment code, tools, local stack or load generators.
    Layer("app/", forbidden=frozenset({"cdk", "monitoring", "devstack", "loadtests", "tests"})),
    # A Lambda bundle holds its own directory and the wire contracts, never another package's internals.
    Layer("lambda/", only=frozenset({"contracts"})),
    # The contracts and the naming module are the bottom layer.
    Layer("contracts/", stdlib_and=frozenset({"contracts"})),
    # (boto3/botocore: credentials.py checks the AWS login before diff/deploy, for cdk and the tools alike.)
    Layer("environments/", stdlib_and=frozenset({"environments", "pydantic", "boto3", "botocore"})),
    # On-call tools read AWS and the catalogue; they do not synthesize.
    Layer("monitoring/", forbidden=frozenset({"cdk", "devstack", "loadtests", "tests"})),
    Layer("cdk/", forbidden=frozenset({"devstack", "loadtests", "tests"})),
    # The LoadTest image holds loadtests/locust and loadtests/simulator only (loadtests/.dockerignore).
    Layer("loadtests/locust/", only=frozenset({"loadtests"})),
    Layer("loadtests/simulator/", only=frozenset({"loadtests"})),
    Layer("devstack/", forbidden=frozenset({"tests"})),
    Layer("loadtests/", forbidden=frozenset({"tests"})),
)
# Inside the LoadTest image, loadtests.* imports must stay within what the image holds.
IMAGE_SUBPACKAGES = ("loadtests.locust", "loadtests.simulator")


def source_files() -> Iterator[Path]:
    for root in SOURCE_ROOTS:
        directory = REPO_ROOT / root
        if directory.is_dir():
            yield from (path for path in sorted(directory.rglob("*.py")) if "__pycache__" not in path.parts)


def relative(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def imports(tree: ast.AST) -> Iterator[str]:
    """Every absolute module name imported anywhere in the module (function-level imports included)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def long_functions(tree: ast.AST, path: str) -> Iterator[tuple[str, int]]:
    """(qualified name, lines) of functions over the limit, except __init__ of CDK constructs and stacks."""

    def visit(node: ast.AST, owner: ast.ClassDef | None, prefix: str) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                yield from visit(child, child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                length = child.end_lineno - child.lineno + 1
                construct_body = child.name == "__init__" and owner is not None and _is_cdk_construct(owner, path)
                if length > MAX_FUNCTION_LINES and not construct_body:
                    yield f"{prefix}{child.name}", length
                yield from visit(child, None, f"{prefix}{child.name}.")

    yield from visit(tree, None, "")


def _is_cdk_construct(cls: ast.ClassDef, path: str) -> bool:
    # CDK wiring reads top to bottom as one declaration: constructs and stacks may keep it in __init__.
    return path.startswith("cdk/") and bool(_base_names(cls) & CDK_CONSTRUCT_CLASSES)


def _base_names(cls: ast.ClassDef) -> set[str]:
    return {base.id if isinstance(base, ast.Name) else getattr(base, "attr", "") for base in cls.bases}


PARSED = {relative(path): (text, ast.parse(text, filename=str(path)))
          for path in source_files() for text in (path.read_text(),)}


def _cdk_construct_classes() -> set[str]:
    """Construct and Stack, plus every class of cdk/ deriving from them (e.g. VpcPythonFunction's subclasses)."""
    classes = {node.name: _base_names(node) for name, (_, tree) in PARSED.items() if name.startswith("cdk/")
               for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    known = {"Construct", "Stack"}
    while grown := {name for name, bases in classes.items() if name not in known and bases & known}:
        known |= grown
    return known


CDK_CONSTRUCT_CLASSES = _cdk_construct_classes()


def test_the_rules_see_the_whole_tree() -> None:
    # A typo in SOURCE_ROOTS or a moved package would make every rule pass vacuously.
    seen = {name.split("/", 1)[0] for name in PARSED}
    assert {"app", "cdk", "contracts", "devstack", "lambda", "loadtests", "monitoring"} <= seen
    assert len(PARSED) > 100


def test_no_module_over_400_lines_except_declarative_tables() -> None:
    too_long = {name: len(text.splitlines()) for name, (text, _) in PARSED.items()
                if len(text.splitlines()) > MAX_MODULE_LINES}
    unexplained = {name: lines for name, lines in too_long.items()
                   if name not in LONG_TABLES and name not in LONG_MODULES_TODO}
    assert unexplained == {}, f"split these into modules with one job each (limit {MAX_MODULE_LINES} lines)"
    stale = sorted(set(LONG_MODULES_TODO) - set(too_long))
    assert stale == [], "no longer over the limit: remove from LONG_MODULES_TODO"


def test_no_function_over_80_lines_outside_cdk_construct_bodies() -> None:
    found = {f"{name}:{function}": length for name, (_, tree) in PARSED.items()
             for function, length in long_functions(tree, name)}
    assert {key: value for key, value in found.items() if key not in LONG_FUNCTIONS_TODO} == {}
    assert sorted(set(LONG_FUNCTIONS_TODO) - set(found)) == [], "fixed: remove from LONG_FUNCTIONS_TODO"


def _exception(name: str, imported: str, table: dict[tuple[str, str], str]) -> bool:
    return any(name.startswith(prefix) and imported == package for prefix, package in table)


def layer_violations() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, (_, tree) in PARSED.items():
        for module in imports(tree):
            top = module.split(".", 1)[0]
            for layer in LAYERS:
                if not name.startswith(layer.prefix):
                    continue
                image_escape = (layer.prefix.startswith("loadtests/") and layer.only is not None
                                and top == "loadtests" and not module.startswith(IMAGE_SUBPACKAGES))
                if layer.violations(top) or image_escape:
                    found.setdefault(name, set()).add(module)
    return found


def test_imports_go_only_downward_across_the_layers() -> None:
    unexplained = {
        name: sorted(module for module in modules
                     if not _exception(name, module.split(".")[0], IMPORT_EXCEPTIONS)
                     and not _exception(name, module.split(".")[0], IMPORT_TODO))
        for name, modules in layer_violations().items()
    }
    assert {name: modules for name, modules in unexplained.items() if modules} == {}


def test_import_todo_list_holds_only_live_offenders() -> None:
    live = {(name, module.split(".")[0]) for name, modules in layer_violations().items() for module in modules}
    assert sorted(set(IMPORT_TODO) - live) == [], "fixed: remove from IMPORT_TODO"


def test_no_module_imports_an_entry_point() -> None:
    # Shared constants live in modules with that job (e.g. devstack/local_resources.py), never in __main__.
    offenders = {name: module for name, (_, tree) in PARSED.items() for module in imports(tree)
                 if module.split(".")[-1] == "__main__"}
    assert offenders == {}


@pytest.mark.parametrize(("layer", "imported", "expected"), [
    (LAYERS[0], "cdk", True), (LAYERS[0], "contracts", False), (LAYERS[0], "fastapi", False),
    (LAYERS[1], "app", True), (LAYERS[1], "contracts", False), (LAYERS[1], "boto3", False),
    (LAYERS[3], "pydantic", False), (LAYERS[3], "json", False), (LAYERS[3], "sqlalchemy", True),
])
def test_a_layer_flags_what_it_forbids(layer: Layer, imported: str, expected: bool) -> None:
    assert layer.violations(imported) is expected


def test_function_length_rule_exempts_only_cdk_construct_init() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    source = (f"class Thing(Construct):\n    def __init__(self):\n{body.replace('    ', '        ')}\n"
              f"def helper():\n{body}\n")
    tree = ast.parse(source)
    assert [name for name, _ in long_functions(tree, "cdk/components/thing.py")] == ["helper"]
    assert [name for name, _ in long_functions(tree, "app/thing.py")] == ["Thing.__init__", "helper"]


def _dockerignore_rules() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_app_image_context_admits_only_the_service_and_the_contracts() -> None:
    # The app image builds from the repository root (cdk/app.py) with app/Dockerfile.
    rules = _dockerignore_rules()
    assert rules[0] == "*", "the root .dockerignore must exclude everything first"
    admitted = {rule[1:].strip("/") for rule in rules if rule.startswith("!")}
    assert admitted == {"app", "contracts"}
    copied = {line.split()[1].split("/")[0] for line in (REPO_ROOT / "app" / "Dockerfile").read_text().splitlines()
              if line.startswith("COPY ") and "--from=" not in line}
    assert copied <= admitted


def test_app_image_context_holds_no_local_stack() -> None:
    for package in ("app", "contracts"):
        directory = REPO_ROOT / package
        assert not any(part == "devstack" for path in directory.rglob("*") for part in path.parts)
        assert not any("devstack" in module for name, (_, tree) in PARSED.items() if name.startswith(f"{package}/")
                       for module in imports(tree))
