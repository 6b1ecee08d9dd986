"""Settings: the built-in defaults, how the layers are loaded, and their validation.

Layers, later wins: `DEFAULTS`, the settings file (`QUART_APP_SETTINGS` or the repo's own
`settings.toml`), `QUART_*` environment variables, then the mapping given to `create_app`.
Every value is checked once, at start-up; a bad one raises `ConfigError`, whose message is a
single line naming the key, the value and what was expected.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import os
import tomllib
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from flask.config import Config
from quart import Quart

from .errors import ConfigError

SETTINGS_ENV_VAR = "QUART_APP_SETTINGS"
REPO_SETTINGS_FILE = Path(__file__).resolve().parent.parent / "settings.toml"

DEFAULTS: dict[str, Any] = {
    "DEBUG": False,
    "LOG_LEVEL": "INFO",
    # "text", or "json": one JSON object per line, for log shippers (see logs.py).
    "LOG_FORMAT": "text",
    "SECRET_KEY": None,
    "SEED_ROUTES": True,
    "INSTANCE_PATH": None,
    # GET /metrics (Prometheus) and the counting behind it.
    "METRICS": True,
    "MAX_CONTENT_LENGTH": 64 * 1024,
    # Most rows one POST /api/info/bulk may carry (the body is bounded by MAX_CONTENT_LENGTH).
    "BULK_MAX_ROWS": 1000,
    # Most rows one NDJSON POST /api/info/bulk may carry: its body is streamed, so
    # MAX_CONTENT_LENGTH bounds each line, not the whole.
    "BULK_MAX_NDJSON_ROWS": 100_000,
    # Flask-Caching's names, with Flask-Caching's meanings.
    "CACHE_TYPE": "SimpleCache",
    "CACHE_DEFAULT_TIMEOUT": 300,
    "CACHE_KEY_PREFIX": "quart_app:",
    "CACHE_THRESHOLD": 500,
    "CACHE_IGNORE_ERRORS": True,
    # None: built from CACHE_REDIS_HOST/PORT/DB/PASSWORD (see `resolve_redis_url`).
    "CACHE_REDIS_URL": None,
    "CACHE_REDIS_HOST": None,
    "CACHE_REDIS_PORT": None,
    "CACHE_REDIS_DB": None,
    "CACHE_REDIS_PASSWORD": None,
    "CACHE_OPTIONS": None,
    "CACHE_ARGS": [],
    "CACHE_NO_NULL_WARNING": False,
    "CACHE_SOURCE_CHECK": False,
    # None: SHA-256. A hashlib constructor, or its import path ("hashlib.md5") in a file.
    "CACHE_HASH_METHOD": None,
    # Beyond Flask-Caching.
    "CACHE_REDIS_POOL_SIZE": 32,
    "CACHE_REDIS_TIMEOUT": 1.0,
    "CACHE_RETRY_INTERVAL": 2.0,
    # A request's Cache-Control: no-cache makes cached views recompute (off: any client
    # could make every request run the view).
    "CACHE_HONOR_NO_CACHE": False,
    "CACHE_FAST_HITS": True,
    # RedisCache only: a bounded in-process copy of cached views' and memoized functions'
    # reads, kept true across processes over the signal bus (see cache/local_tier.py).
    "CACHE_LOCAL": False,
    "CACHE_LOCAL_THRESHOLD": 1000,
    "CACHE_LOCAL_TIMEOUT": 30.0,
    "CACHE_LOCAL_ACK_TIMEOUT": 1.0,
    "DATABASE_URL": "sqlite:///quart_app.sqlite3",
    "DATABASE_POOL": {},
    # Signals: which shipped receivers are connected, and how background ones run.
    "RECEIVERS": {
        "render_log": True,
        "visits": True,
        "error_log": True,
        "flash_log": True,
        "audit": True,
        "insert_counter": True,
        "notify": False,
    },
    "SIGNAL_LOG": False,
    "SIGNALS_MAX_BACKGROUND": 100,
    "SIGNALS_BACKGROUND_TIMEOUT": 30.0,
    "BACKGROUND_TASK_SHUTDOWN_TIMEOUT": 5.0,
    "NOTIFY_DELAY": 0.2,
    "VISITS_FLUSH_INTERVAL": 1.0,
    # More than one process: the Redis signal bus, and how many workers run.py started.
    "SIGNALS_BUS_URL": None,
    "SIGNALS_BUS_CHANNEL": "quart_app:signals",
    "WORKERS": 1,
}

# Flask-Caching accepts several spellings of a backend; all of them mean one of ours.
CACHE_TYPE_ALIASES: dict[str, str] = {
    "simplecache": "SimpleCache",
    "simple": "SimpleCache",
    "flask_caching.backends.simplecache": "SimpleCache",
    "rediscache": "RedisCache",
    "redis": "RedisCache",
    "flask_caching.backends.rediscache": "RedisCache",
    "nullcache": "NullCache",
    "null": "NullCache",
    "flask_caching.backends.nullcache": "NullCache",
}

ENV_PREFIX = "QUART"
# Names the QUART_ prefix catches that are not app settings: Quart's command line reads
# QUART_APP and QUART_SKIP_DOTENV, and click gives `quart run`'s options QUART_RUN_*;
# QUART_APP_* are this project's own switches (QUART_APP_SETTINGS, the tests'
# QUART_APP_TEST_*); QUART_HYPERCORN__* is run.py's [hypercorn] table.
_ENV_KEYS_NOT_SETTINGS = ("APP", "SKIP_DOTENV", "HYPERCORN")
_ENV_PREFIXES_NOT_SETTINGS = ("APP_", "RUN_")
# Settings read by Quart itself and by quart-schema, besides ours.
_FOREIGN_SETTINGS = frozenset(Quart.default_config)
_FOREIGN_SETTING_PREFIXES = ("QUART_SCHEMA_",)

# Settings that may hold credentials, so they must come from the environment.
_SECRET_KEYS = ("SECRET_KEY", "CACHE_REDIS_PASSWORD")
_URL_KEYS = ("DATABASE_URL", "CACHE_REDIS_URL", "SIGNALS_BUS_URL")


def load_config(config: Config, overrides: Mapping[str, Any] | None = None) -> None:
    """Fill `config` from every layer, then validate and normalise it in place."""
    config.from_mapping(copy.deepcopy(DEFAULTS))
    file_values = read_settings_file(settings_file_path())
    refuse_secrets_in_file(file_values)
    deep_merge(config, file_values)
    deep_merge(config, app_environment())
    if overrides:
        deep_merge(config, {key: value for key, value in overrides.items() if key.isupper()})
    validate(config)


def environment_values() -> dict[str, Any]:
    """Every `QUART_*` variable, parsed as Flask's `from_prefixed_env` does (JSON values,
    `__` for nested tables), before anything decides which of them are settings."""
    scratch = Config(root_path=".")
    scratch.from_prefixed_env(ENV_PREFIX)
    return dict(scratch)


def app_environment() -> dict[str, Any]:
    """The environment layer of the app's settings; an unknown name stops start-up.

    A misspelt name would otherwise be ignored in silence (QUART_DATABSE_URL and the app
    runs on SQLite), so it is refused, naming the closest setting. Unknown `CACHE_*` names
    are left to `validate`, which lists the cache settings there are.
    """
    values = {key: value for key, value in environment_values().items()
              if key not in _ENV_KEYS_NOT_SETTINGS
              and not key.startswith(_ENV_PREFIXES_NOT_SETTINGS)}
    for key in sorted(values):
        if (key in DEFAULTS or key in _FOREIGN_SETTINGS or key.startswith("CACHE_")
                or key.startswith(_FOREIGN_SETTING_PREFIXES)):
            continue
        raise ConfigError(f"{ENV_PREFIX}_{key}", "<hidden>",
                          f"a known setting{_did_you_mean(key)}")
    return values


def _did_you_mean(key: str) -> str:
    if key.startswith("HYPERCORN_"):
        return f" (did you mean {ENV_PREFIX}_HYPERCORN__{key.removeprefix('HYPERCORN_')}?)"
    close = difflib.get_close_matches(key, [*DEFAULTS, *_FOREIGN_SETTINGS], n=1)
    return f" (did you mean {ENV_PREFIX}_{close[0]}?)" if close else ""


def hypercorn_environment() -> dict[str, Any]:
    """run.py's `[hypercorn]` keys from the environment: `QUART_HYPERCORN__WORKERS=2`."""
    table = environment_values().get("HYPERCORN", {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"{ENV_PREFIX}_HYPERCORN", table,
                          f"a table: set its keys, as in {ENV_PREFIX}_HYPERCORN__WORKERS=2")
    return {str(key).lower(): value for key, value in table.items()}


def settings_file_path() -> Path | None:
    """The file named by `QUART_APP_SETTINGS`, else the repo's own `settings.toml` if present."""
    named = os.environ.get(SETTINGS_ENV_VAR)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(SETTINGS_ENV_VAR, named, "the path of an existing TOML file")
        return path
    return REPO_SETTINGS_FILE if REPO_SETTINGS_FILE.is_file() else None


def read_settings_file(path: Path | None) -> dict[str, Any]:
    """The UPPERCASE tables and keys of a TOML file; lowercase ones (`[hypercorn]`) are run.py's."""
    if path is None:
        return {}
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(SETTINGS_ENV_VAR, str(path), f"a readable TOML file ({error})") from None
    return {key: value for key, value in data.items() if key.isupper()}


def refuse_secrets_in_file(values: Mapping[str, Any]) -> None:
    for key in _SECRET_KEYS:
        if values.get(key):
            raise ConfigError(key, "<hidden>", f"set only in the environment (QUART_{key})")
    for key in _URL_KEYS:
        url = values.get(key)
        if isinstance(url, str) and urlsplit(url).password:
            raise ConfigError(
                key, mask_password(url), f"no password in a settings file: set QUART_{key}"
            )


def mask_password(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def deep_merge(target: MutableMapping[str, Any], source: Mapping[str, Any]) -> None:
    """Merge `source` into `target`; nested tables merge key by key instead of replacing."""
    for key, value in source.items():
        current = target.get(key)
        if isinstance(value, Mapping) and isinstance(current, MutableMapping):
            deep_merge(current, value)
        else:
            target[key] = copy.deepcopy(value)


# --- validation -------------------------------------------------------------------------


def as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
        return value.lower() in {"true", "1", "yes"}
    raise ConfigError(key, value, "true or false")


def as_int(key: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(key, value, f"a whole number >= {minimum}")
    return value


def as_seconds(key: str, value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(key, value, "a number of seconds > 0")
    return float(value)


def as_url(key: str, value: Any, schemes: tuple[str, ...]) -> str:
    if not isinstance(value, str) or urlsplit(value).scheme not in schemes:
        shown = mask_password(value) if isinstance(value, str) else value
        expected = "a URL starting with " + " or ".join(f"{scheme}://" for scheme in schemes)
        raise ConfigError(key, shown, expected)
    return value


def as_cache_type(key: str, value: Any) -> str:
    """One of ours, or Flask-Caching's custom type: the import path of a backend factory."""
    name = CACHE_TYPE_ALIASES.get(str(value).lower()) if isinstance(value, str) else None
    if name is not None:
        return name
    if isinstance(value, str) and value.startswith("cachelib."):
        raise ConfigError(key, value, "SimpleCache, RedisCache or NullCache: cachelib's "
                          "backends block the event loop (a custom backend is an aiocache one)")
    if isinstance(value, str) and "." in value and not value.startswith("flask_caching."):
        module, _, name = value.rpartition(".")
        try:
            factory = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as error:
            raise ConfigError(key, value, f"an importable backend factory ({error})") from None
        if not callable(factory):
            raise ConfigError(key, value, "a callable factory(app, config, args, options)")
        return value
    raise ConfigError(key, value, "SimpleCache, RedisCache or NullCache, or the import path "
                      "of a factory(app, config, args, options) returning a backend")


def as_prefix(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(key, value, "a non-empty string (clear() deletes only keys under it)")
    return value


def as_hash_method(key: str, value: Any) -> Callable[..., Any] | None:
    """A hashlib constructor (`hashlib.md5`), or its import path in a settings file."""
    if isinstance(value, str):
        module, _, name = value.rpartition(".")
        try:
            value = getattr(importlib.import_module(module or "hashlib"), name)
        except (ImportError, AttributeError):
            raise ConfigError(key, value,
                              "a hashlib constructor such as \"hashlib.sha256\"") from None
    if value is None:
        return None
    try:
        value(b"").hexdigest()
    except Exception:
        raise ConfigError(key, value, "a hashlib constructor such as hashlib.sha256") from None
    return value  # type: ignore[no-any-return]


def as_redis_host(key: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(key, value, "a host name (Flask-Caching also takes a redis.Redis "
                      "client; this cache keeps its own async pool: give its host)")


def as_optional_int(key: str, value: Any) -> int | None:
    return None if value is None else as_int(key, value)


def as_cache_options(key: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(key, value, "a table of backend options")
    return dict(value)


def as_cache_args(key: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ConfigError(key, value, "a list of positional arguments for a custom CACHE_TYPE")
    return list(value)


def as_log_level(key: str, value: Any) -> str:
    levels = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    if not isinstance(value, str) or value.upper() not in levels:
        raise ConfigError(key, value, "one of " + ", ".join(levels))
    return value.upper()


def as_log_format(key: str, value: Any) -> str:
    formats = ("text", "json")
    if not isinstance(value, str) or value.lower() not in formats:
        raise ConfigError(key, value, " or ".join(repr(name) for name in formats))
    return value.lower()


def as_optional_text(key: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(key, value, "a string")


_VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
    "DEBUG": as_bool,
    "LOG_LEVEL": as_log_level,
    "LOG_FORMAT": as_log_format,
    "SECRET_KEY": as_optional_text,
    "SEED_ROUTES": as_bool,
    "INSTANCE_PATH": as_optional_text,
    "METRICS": as_bool,
    "MAX_CONTENT_LENGTH": lambda key, value: as_int(key, value, minimum=1),
    "BULK_MAX_ROWS": lambda key, value: as_int(key, value, minimum=1),
    "BULK_MAX_NDJSON_ROWS": lambda key, value: as_int(key, value, minimum=1),
    "CACHE_TYPE": as_cache_type,
    "CACHE_DEFAULT_TIMEOUT": as_int,
    "CACHE_KEY_PREFIX": as_prefix,
    "CACHE_THRESHOLD": lambda key, value: as_int(key, value, minimum=1),
    "CACHE_IGNORE_ERRORS": as_bool,
    "CACHE_REDIS_URL": lambda key, value: (
        None if value in (None, "") else as_url(key, value, ("redis", "rediss", "unix"))
    ),
    "CACHE_REDIS_PORT": lambda key, value: None if value is None else as_int(key, value, 1),
    "CACHE_REDIS_DB": as_optional_int,
    "CACHE_REDIS_PASSWORD": as_optional_text,
    "CACHE_OPTIONS": as_cache_options,
    "CACHE_ARGS": as_cache_args,
    "CACHE_NO_NULL_WARNING": as_bool,
    "CACHE_SOURCE_CHECK": as_bool,
    "CACHE_HASH_METHOD": as_hash_method,
    "CACHE_REDIS_HOST": as_redis_host,
    "CACHE_REDIS_POOL_SIZE": lambda key, value: as_int(key, value, minimum=1),
    "CACHE_REDIS_TIMEOUT": as_seconds,
    "CACHE_RETRY_INTERVAL": as_seconds,
    "CACHE_HONOR_NO_CACHE": as_bool,
    "CACHE_FAST_HITS": as_bool,
    "CACHE_LOCAL": as_bool,
    "CACHE_LOCAL_THRESHOLD": lambda key, value: as_int(key, value, minimum=1),
    "CACHE_LOCAL_TIMEOUT": as_seconds,
    "CACHE_LOCAL_ACK_TIMEOUT": as_seconds,
    "DATABASE_URL": lambda key, value: as_url(key, value, ("mysql", "sqlite")),
    "SIGNAL_LOG": as_bool,
    "SIGNALS_MAX_BACKGROUND": lambda key, value: as_int(key, value, minimum=1),
    "SIGNALS_BACKGROUND_TIMEOUT": as_seconds,
    "BACKGROUND_TASK_SHUTDOWN_TIMEOUT": as_seconds,
    "NOTIFY_DELAY": lambda key, value: 0.0 if value == 0 else as_seconds(key, value),
    "VISITS_FLUSH_INTERVAL": as_seconds,
    "SIGNALS_BUS_URL": lambda key, value: (
        None if value in (None, "") else as_url(key, value, ("redis", "rediss", "unix"))
    ),
    "SIGNALS_BUS_CHANNEL": as_prefix,
    "WORKERS": lambda key, value: as_int(key, value, minimum=1),
}


def validate(config: MutableMapping[str, Any]) -> None:
    """Check and normalise every known setting; refuse CACHE_* names we do not implement."""
    for key, check in _VALIDATORS.items():
        config[key] = check(key, config[key])
    _check_cache_settings(config)
    if not isinstance(config["DATABASE_POOL"], Mapping):
        raise ConfigError("DATABASE_POOL", config["DATABASE_POOL"], "a table of pool settings")
    config["RECEIVERS"] = validate_receivers(config["RECEIVERS"])
    if config["CACHE_LOCAL"]:
        _require_redis_for_local_tier(config)


def cache_config(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """The CACHE_* settings of a `Cache` on any Quart app: defaults, then `layers` (later
    wins), validated as `validate` does. For apps not built by `create_app`, whose config
    has none of our defaults, and for `Cache(config=...)` / `init_app(app, config=...)`."""
    merged = {key: copy.deepcopy(value) for key, value in DEFAULTS.items()
              if key.startswith("CACHE_")}
    for layer in layers:
        merged.update({key: value for key, value in (layer or {}).items()
                       if key.startswith("CACHE_")})
    for key in list(merged):
        check = _VALIDATORS.get(key)
        if check is not None:
            merged[key] = check(key, merged[key])
    _check_cache_settings(merged)
    return merged


# Flask-Caching settings quart_app refuses, and why (every other unknown CACHE_* key is
# refused with the list of supported ones).
_REFUSED_CACHE_KEYS: dict[str, str] = {
    "CACHE_SERIALIZER": "nothing: values are always stored as tagged JSON, never pickle, "
                        "so nothing read from a shared cache can run code",
    "CACHE_DIR": "RedisCache or SimpleCache: there is no FileSystemCache (a file per entry "
                 "blocks the event loop)",
    "CACHE_ENABLE_SIGNALS": "cache.view_stats() or /readyz for hit and miss counts",
}

# CACHE_OPTIONS keys that name a Flask-Caching backend argument, and the setting each sets.
_BACKEND_OPTIONS = {"default_timeout": "CACHE_DEFAULT_TIMEOUT", "key_prefix": "CACHE_KEY_PREFIX",
                    "threshold": "CACHE_THRESHOLD"}


def _check_cache_settings(config: MutableMapping[str, Any]) -> None:
    for key in config:
        if key in _REFUSED_CACHE_KEYS:
            raise ConfigError(key, config[key], _REFUSED_CACHE_KEYS[key])
        if key.startswith("CACHE_") and key not in _VALIDATORS:
            raise ConfigError(key, config[key], "a supported cache setting: " + ", ".join(
                sorted(name for name in _VALIDATORS if name.startswith("CACHE_"))
            ))
    builtin = config["CACHE_TYPE"] in CACHE_TYPE_ALIASES.values()
    if builtin and config["CACHE_ARGS"]:
        raise ConfigError("CACHE_ARGS", config["CACHE_ARGS"], "an empty list: positional "
                          "arguments go to a custom CACHE_TYPE factory only; use CACHE_OPTIONS "
                          "or the CACHE_* settings for " + config["CACHE_TYPE"])
    _apply_backend_options(config, builtin)
    config["CACHE_REDIS_URL"] = resolve_redis_url(config)


def _apply_backend_options(config: MutableMapping[str, Any], builtin: bool) -> None:
    """Flask-Caching passes CACHE_OPTIONS to the backend's constructor: its own arguments
    (threshold, default_timeout, key_prefix) set ours, the rest go to redis-py."""
    options = config["CACHE_OPTIONS"]
    if not options or not builtin:
        return
    for name, key in _BACKEND_OPTIONS.items():
        if name in options:
            config[key] = _VALIDATORS[key](f"CACHE_OPTIONS.{name}", options[name])
    others = sorted(set(options) - set(_BACKEND_OPTIONS))
    if others and config["CACHE_TYPE"] != "RedisCache":
        raise ConfigError("CACHE_OPTIONS", options, f"only {', '.join(_BACKEND_OPTIONS)} for "
                          f"{config['CACHE_TYPE']} (redis-py options need RedisCache)")


def resolve_redis_url(config: Mapping[str, Any]) -> str:
    """CACHE_REDIS_URL, else one built from HOST, PORT, DB and PASSWORD, as Flask-Caching does.

    As there, the URL wins over HOST and PORT, and CACHE_REDIS_DB applies when the URL names
    no database. Unlike there, CACHE_REDIS_PASSWORD is also added to a URL that has none, so
    the URL can sit in a settings file and the password in the environment.
    """
    url: str | None = config["CACHE_REDIS_URL"]
    password = config["CACHE_REDIS_PASSWORD"]
    database = config["CACHE_REDIS_DB"]
    if url is None:
        host = config["CACHE_REDIS_HOST"] or "127.0.0.1"
        port = config["CACHE_REDIS_PORT"] or 6379
        url = f"redis://{host}:{port}/{database or 0}"
    parts = urlsplit(url)
    if parts.scheme != "unix" and database is not None and parts.path.strip("/") == "":
        parts = parts._replace(path=f"/{database}")
    if password and not parts.password:
        user = quote(parts.username or "", safe="")
        parts = parts._replace(netloc=f"{user}:{quote(password, safe='')}@{parts.netloc}")
    return str(parts.geturl())


def _require_redis_for_local_tier(config: MutableMapping[str, Any]) -> None:
    """The local tier sits in front of Redis, and its evictions travel on the signal bus."""
    if config["CACHE_TYPE"] != "RedisCache":
        raise ConfigError("CACHE_LOCAL", True, "CACHE_TYPE = 'RedisCache' (the local tier "
                          f"sits in front of Redis; {config['CACHE_TYPE']} is already local)")
    if not config["SIGNALS_BUS_URL"]:
        config["SIGNALS_BUS_URL"] = config["CACHE_REDIS_URL"]


def validate_receivers(value: Any) -> dict[str, bool]:
    """RECEIVERS switches shipped receivers on and off; names are case-insensitive."""
    known = DEFAULTS["RECEIVERS"]
    if not isinstance(value, Mapping):
        raise ConfigError("RECEIVERS", value, "a table of receiver = true/false")
    switches = dict(known)
    for name, enabled in value.items():
        key = str(name).lower()
        if key not in known:
            raise ConfigError(f"RECEIVERS.{name}", enabled, "one of " + ", ".join(known))
        switches[key] = as_bool(f"RECEIVERS.{name}", enabled)
    return switches
