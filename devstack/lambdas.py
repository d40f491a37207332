"""Loading a Lambda handler from lambda/<name>/handler.py, the way the Lambda runtime sees it.

`lambda` is a Python keyword, so lambda/ is not an importable package: the handler file is loaded by
path, with lambda/<name>/ put on sys.path so that its sibling modules (`import lake_writer`) resolve as
they do at the root of the deployed bundle. The repository root must be importable as well (it is for
`python -m ...` from the root and for pytest) because bundles include modules such as
contracts/reading.py at their root.

Sibling modules are plain top-level modules: two Lambdas must not both have one of the same name
in one process (checked here, loudly).
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

LAMBDA_ROOT = Path(__file__).resolve().parent.parent / "lambda"

Handler = Callable[[dict[str, Any], Any], Any]


def load_handler_module(name: str, *, lambda_root: Path = LAMBDA_ROOT) -> ModuleType:
    """The module lambda/<name>/handler.py, loaded once per process (as `lambda_<name>_handler`)."""
    directory = (lambda_root / name).resolve()
    handler_file = directory / "handler.py"
    if not handler_file.is_file():
        raise FileNotFoundError(f"no Lambda handler at {handler_file}")
    module_name = f"lambda_{name}_handler"
    if module_name in sys.modules:
        return sys.modules[module_name]

    _refuse_shadowed_siblings(directory)
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    spec = importlib.util.spec_from_file_location(module_name, handler_file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {handler_file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def load_handler(name: str, function: str = "handler") -> Handler:
    """The handler function of lambda/<name>/handler.py (e.g. `load_handler("archiver")`)."""
    return getattr(load_handler_module(name), function)


def _refuse_shadowed_siblings(directory: Path) -> None:
    for sibling in directory.glob("*.py"):
        if sibling.name == "handler.py":
            continue  # loaded under its own module name
        loaded = sys.modules.get(sibling.stem)
        loaded_from = getattr(loaded, "__file__", None)
        if loaded is not None and loaded_from and Path(loaded_from).resolve() != sibling.resolve():
            raise ImportError(
                f"{sibling} would be shadowed by the already imported module {sibling.stem!r} from {loaded_from}"
            )


@dataclass(frozen=True)
class LocalLambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "local"
    log_stream_name: str = "local"
    timeout_seconds: float = 900.0

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:local:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return int(self.timeout_seconds * 1000)
