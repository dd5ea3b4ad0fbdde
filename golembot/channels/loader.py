"""Custom adapters named in golem.yaml: ``_adapter: ./adapters/mine.py[:Class]`` or ``pkg.mod[:Class]``."""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re


class AdapterLoadError(RuntimeError):
    """A channel whose adapter cannot be loaded; the message says what to fix."""


def _split(spec: str):
    # "C:\x" is not a concern (Linux); a ":Name" suffix is a class name when it is an identifier.
    path, sep, cls = spec.rpartition(":")
    if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", cls):
        return path, cls
    return spec, None


def _is_file_spec(spec: str) -> bool:
    return spec.startswith((".", "/")) or spec.endswith(".py")


def _load_module(spec: str, key: str, base_dir: str):
    if _is_file_spec(spec):
        path = spec if os.path.isabs(spec) else os.path.normpath(os.path.join(base_dir, spec))
        if not os.path.isabs(spec):
            root = os.path.realpath(base_dir)
            if os.path.commonpath([root, os.path.realpath(path)]) != root:
                raise AdapterLoadError(f'Failed to load custom adapter "{spec}": path leaves the '
                                       "assistant directory")
        if not os.path.isfile(path):
            raise AdapterLoadError(f'Failed to load custom adapter "{spec}": no such file {path}')
        name = "golembot_custom_adapter_" + re.sub(r"\W", "_", key)
        mod_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        return module
    return importlib.import_module(spec)


def _pick_class(module, spec: str, cls_name: str | None):
    if cls_name:
        cls = getattr(module, cls_name, None)
        if not inspect.isclass(cls):
            raise AdapterLoadError(f'Custom adapter "{spec}" has no class {cls_name}.')
        return cls
    if inspect.isclass(getattr(module, "Adapter", None)):
        return module.Adapter
    candidates = [c for _, c in inspect.getmembers(module, inspect.isclass)
                  if c.__module__ == module.__name__
                  and all(callable(getattr(c, m, None)) for m in ("start", "reply", "stop"))]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise AdapterLoadError(f'Custom adapter "{spec}" must export a class with start, reply '
                               "and stop (name it Adapter, or add :ClassName).")
    names = ", ".join(sorted(c.__name__ for c in candidates))
    raise AdapterLoadError(f'Custom adapter "{spec}" defines several adapter classes ({names}); '
                           "add :ClassName to choose one.")


def load_adapter(key: str, channel_config: dict, base_dir: str):
    """Instantiate the adapter for channel ``key`` with its (resolved) config mapping."""
    spec = channel_config.get("_adapter") if isinstance(channel_config, dict) else None
    if not spec or not isinstance(spec, str):
        raise AdapterLoadError(f'Unknown channel type "{key}". Add "_adapter: <path or package>" '
                               "to use a custom adapter.")
    target, cls_name = _split(spec)
    try:
        module = _load_module(target, key, base_dir)
    except AdapterLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to fix
        raise AdapterLoadError(f'Failed to load custom adapter "{spec}": {exc}') from exc
    cls = _pick_class(module, spec, cls_name)
    try:
        return cls(dict(channel_config))
    except Exception as exc:  # noqa: BLE001 - e.g. a required field missing from the mapping
        raise AdapterLoadError(f'Custom adapter "{spec}" could not be created for channel '
                               f'"{key}": {type(exc).__name__}: {exc}') from exc
