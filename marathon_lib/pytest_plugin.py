"""The suite's pytest options, registered through the `pytest11` entry point of the installed package.

pytest loads entry-point plugins before it parses the command line in full; a root conftest.py is found only
after. Declaring the options here is what lets `pytest -k "qwen and TAU" --results-dir /existing/folder` (no
test path) read the folder as the option's value. The hooks, fixtures and case generation stay in the
project's conftest.py; this module only declares options and mends the one decision pytest takes before any
plugin can speak (below), so other projects' pytest runs in the same environment are unaffected.
"""

from __future__ import annotations

import copy
import inspect
from pathlib import Path

import pytest

GROUP = "marathon"


def pytest_addoption(parser: pytest.Parser) -> None:
    from .options import add_options

    add_options(parser.getgroup(GROUP, "AudioMarathon benchmark").addoption)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """Redo pytest's rootdir/ini decision with the suite's options known.

    pytest picks the rootdir and ini file from the positional arguments of a first parse that runs before
    plugins are loaded, so in `pytest -k TAU --data-root /data/AudioMarathon` the existing folder passes for
    a test path: the session would be rooted in /data/AudioMarathon, without this project's pytest.ini (its
    addopts, markers and testpaths), and the cache plugin would write there. Now that the options are
    known, the same decision is taken again from the real positional arguments; when it differs, the
    session takes the corrected rootdir and ini, and the ini's addopts are applied as pytest applies them.
    """
    from _pytest.config.findpaths import determine_setup

    namespace = early_config.known_args_namespace
    wanted = {"inifile": namespace.inifilename, "override_ini": namespace.override_ini,
              "args": namespace.file_or_dir, "rootdir_cmd_arg": namespace.rootdir or None,
              "invocation_dir": early_config.invocation_params.dir}
    accepted = inspect.signature(determine_setup).parameters
    rootpath, inipath, inicfg = determine_setup(**{k: v for k, v in wanted.items() if k in accepted})[:3]
    if (rootpath, inipath) == (early_config.rootpath, early_config.inipath):
        return
    early_config._rootpath, early_config._inipath, early_config._inicfg = rootpath, inipath, inicfg
    early_config._inicache.clear()
    parser.extra_info["rootdir"], parser.extra_info["inifile"] = str(rootpath), str(inipath)
    addopts = list(early_config.getini("addopts"))
    args[:] = addopts + args  # the list pytest parses for good after this hook
    early_config.pluginmanager.consider_preparse(addopts, exclude_only=False)  # e.g. -p no:cacheprovider
    early_config.known_args_namespace = namespace = parser.parse_known_args(args, namespace=copy.copy(
        early_config.option))
    namespace.confcutdir = str(Path(inipath).parent if inipath is not None else rootpath)
