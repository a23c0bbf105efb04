"""Load the configuration: TOML file, then ``NOTIFACTOR_*`` environment overrides.

Values from the environment are strings; the structuring hooks here accept a
string where a number or a boolean is expected (``"8080"``, ``"true"``) and
nothing looser, so ``http_port = "eighty"`` fails with a clear line instead of
reaching a listener.
"""

from __future__ import annotations

import tomllib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from notifactor.config.model import Config
from notifactor.errors import ConfigError, FieldValueError

ENV_PREFIX = "NOTIFACTOR_"
CONFIG_PATH_ENV = "NOTIFACTOR_CONFIG"
# Variables under the prefix that are not settings: the config path itself and
# the knobs of the test harness and the local infrastructure.
_NOT_SETTINGS = (CONFIG_PATH_ENV, "NOTIFACTOR_TEST_", "NOTIFACTOR_CACHE_DIR", "NOTIFACTOR_BENCH_")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Build the configuration of this process.

    Args:
        path: the TOML file (``--config``); when None, ``NOTIFACTOR_CONFIG`` names
            it, and with neither every key takes its default.
        env: the environment to read overrides from (the process's by default).

    Raises:
        ConfigError: one line naming the key and the reason.
    """
    environ = dict(_os_environ() if env is None else env)
    if path is None and environ.get(CONFIG_PATH_ENV):
        path = Path(environ[CONFIG_PATH_ENV])
    raw: dict[str, Any] = _read_toml(path) if path is not None else {}
    _apply_env(raw, environ)
    _merge_tenant_defaults(raw)
    return structure_config(raw)


def structure_config(raw: Mapping[str, Any]) -> Config:
    """Turn a nested mapping (TOML shape) into a validated ``Config``."""
    try:
        return _converter.structure(raw, Config)
    except ClassValidationError as group:
        key, reason = _first_failure(group, ())
        raise ConfigError(key or "config", reason) from None


def _os_environ() -> Mapping[str, str]:
    import os

    return os.environ


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config", f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("config", f"cannot read {path}: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path} is not valid TOML: {exc}") from None


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name.startswith(_NOT_SETTINGS):
            continue
        parts = _env_key_parts(name[len(ENV_PREFIX) :])
        key = ".".join(parts)
        if not all(parts):
            raise ConfigError(key, f"malformed environment variable name {name}")
        node = raw
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(key, f"{name} names a key inside {part!r}, which is not a table")
            node = child
        node[parts[-1]] = environ[name]


def _env_key_parts(suffix: str) -> list[str]:
    """The dotted key a variable name sets: parts lowercased, except a tenant id.

    ``TENANTS__BigCo__BURST`` is ``tenants.BigCo.burst``: tenant ids are
    case-sensitive, so the part after ``TENANTS`` keeps its case, unless it
    is ``default`` in any case (the ``[tenants.default]`` table).
    """
    parts = suffix.split("__")
    lowered = [p.lower() for p in parts]
    if len(parts) >= 2 and lowered[0] == "tenants" and lowered[1] != "default":
        lowered[1] = parts[1]
    return lowered


def _merge_tenant_defaults(raw: dict[str, Any]) -> None:
    """Make every ``[tenants."<id>"]`` a full policy: its keys over ``[tenants.default]``."""
    tenants = raw.get("tenants")
    if tenants is None:
        return
    if not isinstance(tenants, dict):
        raise ConfigError("tenants", "must be a table of tenant policies")
    default = tenants.get("default", {})
    if not isinstance(default, dict):
        raise ConfigError("tenants.default", "must be a table")
    merged: dict[str, Any] = {"default": default}
    for tenant_id, policy in tenants.items():
        if tenant_id == "default":
            continue
        if not isinstance(policy, dict):
            raise ConfigError(f"tenants.{tenant_id}", "must be a table")
        merged[tenant_id] = {**default, **policy}
    raw["tenants"] = merged


def _first_failure(exc: BaseException, path: tuple[str, ...]) -> tuple[str, str]:
    """Walk cattrs' exception tree to the first leaf: its dotted key and reason."""
    if isinstance(exc, ClassValidationError | IterableValidationError):
        for sub in exc.exceptions:
            return _first_failure(sub, path + _note_path(sub))
    if isinstance(exc, ForbiddenExtraKeysError):
        extra = ", ".join(sorted(exc.extra_fields))
        return ".".join([*path, sorted(exc.extra_fields)[0]]), f"unknown key ({extra})"
    reason = str(exc) or type(exc).__name__
    return ".".join(path), reason


def _note_path(exc: BaseException) -> tuple[str, ...]:
    for note in getattr(exc, "__notes__", ()):
        name = getattr(note, "name", None)
        if name is not None:
            return (str(name),)
        index = getattr(note, "index", None)
        if index is not None:
            return (str(index),)
    return ()


# --- strict scalar hooks -------------------------------------------------------


def _to_int(value: object, _type: type) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected an integer, got {value!r}")


def _to_float(value: object, _type: type) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a number, got {value!r}")


def _to_bool(value: object, _type: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected true or false, got {value!r}")


def _to_str(value: object, _type: type) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {value!r}")


def _to_str_tuple(value: object, _type: Any) -> tuple[str, ...]:
    """A list of strings (TOML), or one comma-separated string (environment)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple):
        return tuple(_to_str(item, str) for item in value)
    raise ValueError(f"expected a list of strings, got {value!r}")


def _to_path(value: object, _type: type) -> Path:
    return Path(_to_str(value, str))


def _to_optional(value: object, type_: Any) -> Any:
    inner = next(arg for arg in type_.__args__ if arg is not type(None))
    if value is None or value == "":
        return None
    return _converter.structure(value, inner)


def _to_literal(value: object, type_: Any) -> Any:
    choices = type_.__args__
    if value in choices:
        return value
    raise ValueError(f"must be one of {', '.join(map(str, choices))} (got {value!r})")


def _is_literal(type_: Any) -> bool:
    return getattr(type_, "__origin__", None) is Literal


def _is_optional(type_: Any) -> bool:
    args = getattr(type_, "__args__", ())
    origin = getattr(type_, "__origin__", None)
    is_union = isinstance(type_, types.UnionType) or str(origin) == "typing.Union"
    return is_union and len(args) == 2 and type(None) in args


def _structure_attrs_class(value: object, cls: type) -> Any:
    """Structure an attrs class, naming the field whose validator refused it."""
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a table, got {value!r}")
    try:
        return _base_structure[cls](value, cls)
    except ClassValidationError as group:
        # Errors of structuring a field carry a note naming it; an error raised
        # while constructing the instance (a validator) does not.
        unplaced = [e for e in group.exceptions if not _note_path(e)]
        if not unplaced or len(unplaced) != len(group.exceptions):
            raise
        raise _locate_field_error(cls, value, unplaced[0]) from None


def _locate_field_error(cls: type, value: Mapping[str, Any], exc: Exception) -> Exception:
    """Re-run each field's validator alone to find the key the failure belongs to."""
    if isinstance(exc, FieldValueError):
        return ClassValidationError(
            f"While structuring {cls.__name__}", [_with_note(exc, exc.key)], cls
        )
    probe = types.SimpleNamespace(
        **{a.name: value.get(a.alias, a.default) for a in attrs.fields(cls)}
    )
    for field in attrs.fields(cls):
        if field.validator is None or field.alias not in value:
            continue
        try:
            structured = _converter.structure(value[field.alias], field.type)
            field.validator(probe, field, structured)
        except (ValueError, TypeError) as field_exc:
            return ClassValidationError(
                f"While structuring {cls.__name__}", [_with_note(field_exc, field.alias)], cls
            )
    return ClassValidationError(f"While structuring {cls.__name__}", [exc], cls)


def _with_note(exc: Exception, name: str) -> Exception:
    from cattrs.errors import AttributeValidationNote

    exc.add_note(AttributeValidationNote(f"Structuring @ attribute {name}", name, object))
    return exc


_converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
_converter.register_structure_hook(int, _to_int)
_converter.register_structure_hook(float, _to_float)
_converter.register_structure_hook(bool, _to_bool)
_converter.register_structure_hook(str, _to_str)
_converter.register_structure_hook(Path, _to_path)
_converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _to_str_tuple)
_converter.register_structure_hook_func(_is_optional, _to_optional)
_converter.register_structure_hook_func(_is_literal, _to_literal)
_base_structure: dict[type, Any] = {}


def _attrs_factory(cls: type) -> Any:
    from cattrs.gen import make_dict_structure_fn

    _base_structure[cls] = make_dict_structure_fn(cls, _converter, _cattrs_forbid_extra_keys=True)
    return _structure_attrs_class


_converter.register_structure_hook_factory(attrs.has, _attrs_factory)
