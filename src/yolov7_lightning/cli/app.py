"""The one Hydra entry-point pattern every command shares."""

from __future__ import annotations

import errno
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from ..config import register_configs
from ..errors import UserError
from .output import OutputFolderError, require_writable
from .paths import CONFIG_DIR


# an OSError with one of these is about the machine, not the code: a full disk, a quota, a file-size
# limit, a read-only file system, a missing permission
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})


def user_error_message(e: BaseException, out_dir: str | None = None) -> str | None:
    """The one line to print for an error the user can fix (:class:`~yolov7_lightning.errors.UserError`,
    or an OSError of :data:`ENVIRONMENT_ERRNOS`, named by its file), or None: a bug, shown with its traceback.
    Hydra's ``instantiate`` wraps what a constructor raised: the cause is judged."""
    while isinstance(e, InstantiationException) and e.__cause__ is not None:
        e = e.__cause__
    if isinstance(e, UserError):
        return str(e)
    if isinstance(e, OSError) and e.errno in ENVIRONMENT_ERRNOS:
        where = e.filename if e.filename is not None else (f"writing into {out_dir}" if out_dir else "")
        return f"{where}: {e.strerror or e}" if where else str(e.strerror or e)
    return None


def _run_dir_override(argv: list[str]) -> str | None:
    """``hydra.run.dir=<folder>`` of a single run, when given as a plain path (Hydra creates it and
    writes its config there before the command starts; checked first so a folder that cannot be
    written is one line too)."""
    if any(a.startswith("-") for a in argv):  # --multirun, --cfg, --help...: Hydra decides
        return None
    for arg in argv:
        if arg.startswith("hydra.run.dir=") and "${" not in arg:
            value = arg.split("=", 1)[1]
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]  # quoted, as Lightning's DDP launcher passes it to the other ranks
            return value
    return None


def hydra_app(config_name: str, run: Callable[[DictConfig], Any], standalone: bool = False) -> Callable[[], None]:
    """A console-script ``main`` running ``run(cfg)`` on ``conf/<config_name>.yaml`` plus overrides;
    what ``run`` returns goes back to Hydra (a sweeper optimises it). ``standalone`` configs live in
    ``conf/standalone/`` and see no config groups, so their keys (``model=...``) are plain values.

    A user error (:func:`user_error_message`) prints ``error: <message>`` on stderr and exits with status 1;
    ``HYDRA_FULL_ERROR=1`` shows the full traceback instead."""

    config_dir = str(Path(CONFIG_DIR) / "standalone") if standalone else CONFIG_DIR

    @hydra.main(version_base="1.3", config_path=config_dir, config_name=config_name)
    def _main(cfg: DictConfig) -> Any:
        try:
            return run(cfg)
        except Exception as e:
            message = user_error_message(e, _output_dir())
            if message is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {message}", file=sys.stderr, flush=True)
            sys.exit(1)

    def main() -> None:
        register_configs()
        # conf/hydra/launcher/submitit_*.yaml extend the plugin's schemas of the same name on purpose
        warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_\w+' is validated against ConfigStore")
        run_dir = _run_dir_override(sys.argv[1:])
        if run_dir is not None and os.environ.get("HYDRA_FULL_ERROR") != "1":
            try:
                require_writable(run_dir)
            except OutputFolderError as e:
                print(f"error: {e}", file=sys.stderr, flush=True)
                sys.exit(1)
        _main()

    return main


def _output_dir() -> str | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else None
