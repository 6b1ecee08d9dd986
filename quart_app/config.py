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
import math
import os
import re
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
    # The tutorial's demo routes (blueprints/tutorial.py); SEED_ROUTES is its old name.
    "TUTORIAL_ROUTES": True,
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
    # RedisSentinelCache: the sentinels ("host:port" or [host, port]; None: Flask-Caching's
    # 127.0.0.1:26379), the master's name, and the sentinels' own password (environment only).
    "CACHE_REDIS_SENTINELS": None,
    "CACHE_REDIS_SENTINEL_MASTER": "mymaster",
    "CACHE_REDIS_SENTINEL_PASSWORD": None,
    # RedisClusterCache: some of the cluster's nodes ("host:port,host:port" or a list; the
    # others are learnt from them). Its password is CACHE_REDIS_PASSWORD (environment only).
    "CACHE_REDIS_CLUSTER": None,
    # MemcachedCache: one "host:port" (None: 127.0.0.1:11211). CACHE_REDIS_POOL_SIZE and
    # CACHE_REDIS_TIMEOUT size and bound its connections too.
    "CACHE_MEMCACHED_SERVERS": None,
    # SASLMemcachedCache's: refused with it (see `_REFUSED_CACHE_TYPES`).
    "CACHE_MEMCACHED_USERNAME": None,
    "CACHE_MEMCACHED_PASSWORD": None,
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
    # RedisCache (or MemcachedCache with SIGNALS_BUS_URL): a bounded in-process copy of cached
    # views' and memoized functions' reads, kept true across processes over the signal bus
    # (see cache/local_tier.py).
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
    "SHUTDOWN_TIMEOUT": 20.0,
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
    "redissentinelcache": "RedisSentinelCache",
    "redissentinel": "RedisSentinelCache",
    "flask_caching.backends.redissentinelcache": "RedisSentinelCache",
    "flask_caching.backends.redissentinel": "RedisSentinelCache",
    "redisclustercache": "RedisClusterCache",
    "rediscluster": "RedisClusterCache",
    "flask_caching.backends.redisclustercache": "RedisClusterCache",
    "flask_caching.backends.rediscluster": "RedisClusterCache",
    # The module Flask-Caching's Redis classes are defined in, as an import path names them.
    "flask_caching.backends.rediscache.rediscache": "RedisCache",
    "flask_caching.backends.rediscache.redissentinelcache": "RedisSentinelCache",
    "flask_caching.backends.rediscache.redisclustercache": "RedisClusterCache",
    "flask_caching.backends.simplecache.simplecache": "SimpleCache",
    "flask_caching.backends.nullcache.nullcache": "NullCache",
    "nullcache": "NullCache",
    "null": "NullCache",
    "flask_caching.backends.nullcache": "NullCache",
    "memcachedcache": "MemcachedCache",
    "memcached": "MemcachedCache",
    "flask_caching.backends.memcachedcache": "MemcachedCache",
    "flask_caching.backends.memcache.memcachedcache": "MemcachedCache",
}

#: The CACHE_TYPEs served by Redis (what the local tier and redis-py options need).
REDIS_CACHE_TYPES = ("RedisCache", "RedisSentinelCache", "RedisClusterCache")

_NO_SASL = ("memcached authentication is not supported: aiocache's memcached backend "
            "(aiomcache) speaks only the text protocol, and SASL needs the binary one; use "
            "MemcachedCache on a memcached reachable only by the app (a private network or "
            "a local socket), or RedisCache with CACHE_REDIS_PASSWORD")
# Flask-Caching spellings that name a backend quart_app cannot offer, and why.
_REFUSED_CACHE_TYPES: dict[str, str] = {
    "saslmemcachedcache": _NO_SASL,
    "saslmemcached": _NO_SASL,
    "flask_caching.backends.saslmemcachedcache": _NO_SASL,
    "flask_caching.backends.memcache.saslmemcachedcache": _NO_SASL,
    "spreadsaslmemcachedcache": _NO_SASL,
    "flask_caching.backends.spreadsaslmemcachedcache": _NO_SASL,
    "flask_caching.backends.memcache.spreadsaslmemcachedcache": _NO_SASL,
}

#: Backends every process of the app shares: a write whose invalidation they did not take
#: must not be acknowledged (see `cache.write_guard`).
SHARED_CACHE_TYPES = ("RedisCache", "RedisSentinelCache", "RedisClusterCache", "MemcachedCache")

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

# Old names of renamed settings, still accepted in every layer: each sets the new name in its
# layer (a later layer still wins), and a layer that gives both, differently, is refused.
SETTING_ALIASES: dict[str, str] = {"SEED_ROUTES": "TUTORIAL_ROUTES"}

# Settings that may hold credentials, so they must come from the environment.
_SECRET_KEYS = ("SECRET_KEY", "CACHE_REDIS_PASSWORD", "CACHE_REDIS_SENTINEL_PASSWORD",
                "CACHE_MEMCACHED_PASSWORD")
_URL_KEYS = ("DATABASE_URL", "CACHE_REDIS_URL", "SIGNALS_BUS_URL")


def load_config(config: Config, overrides: Mapping[str, Any] | None = None) -> None:
    """Fill `config` from every layer, then validate and normalise it in place."""
    config.from_mapping(copy.deepcopy(DEFAULTS))
    file_values = read_settings_file(settings_file_path())
    refuse_secrets_in_file(file_values)
    deep_merge(config, resolve_aliases(file_values))
    deep_merge(config, resolve_aliases(app_environment()))
    if overrides:
        deep_merge(config, resolve_aliases(
            {key: value for key, value in overrides.items() if key.isupper()}))
    validate(config)


def resolve_aliases(layer: Mapping[str, Any]) -> dict[str, Any]:
    """One layer's values with every old name (`SETTING_ALIASES`) given as its new one."""
    values = dict(layer)
    for old, new in SETTING_ALIASES.items():
        if old not in values:
            continue
        value = values.pop(old)
        if new in values:
            check = _VALIDATORS[new]
            if check(old, value) != check(new, values[new]):
                raise ConfigError(old, value, f"the value of {new} ({values[new]!r}), its new "
                                  "name, or only one of the two")
        else:
            values[new] = value
    return values


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
        if (key in DEFAULTS or key in SETTING_ALIASES or key in _FOREIGN_SETTINGS
                or key.startswith("CACHE_") or key.startswith(_FOREIGN_SETTING_PREFIXES)):
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
        if isinstance(url, str) and mask_password(url) != url:
            raise ConfigError(
                key, mask_password(url), f"no password in a settings file: set QUART_{key}"
            )


_QUERY_PASSWORD = re.compile(r"(?P<name>[?&][^=&#]*password[^=&#]*=)[^&#]*", re.IGNORECASE)


def mask_password(url: str) -> str:
    """`url` with its password shown as `***`: the one way quart_app shows a URL it refuses.

    It never raises (the URLs it shows are often the broken ones), and where a URL is
    ambiguous it hides more rather than less: everything from the `:` after the user name
    to the last `@` is the password, even where a password with an unescaped `@`, `/`, `?`
    or `#` makes urlsplit see less of it. A user name has no `/`, so a path such as
    `sqlite:///a:b@c` has no password. A query parameter whose name says password is one.
    """
    head, slashes, rest = url.partition("//")
    userinfo, at, host = rest.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if slashes and at and colon and password and "/" not in user:
        url = f"{head}//{user}:***@{host}"
    # redis-py also takes a password from the query (`?password=`, `?sentinel_password=`).
    return _QUERY_PASSWORD.sub(r"\g<name>***", url)


def deep_merge(target: MutableMapping[str, Any], source: Mapping[str, Any]) -> None:
    """Merge `source` into `target`; nested tables merge key by key instead of replacing."""
    for key, value in source.items():
        current = target.get(key)
        if isinstance(value, Mapping) and isinstance(current, MutableMapping):
            deep_merge(current, value)
        else:
            target[key] = copy.deepcopy(value)


# --- validation -------------------------------------------------------------------------


# The words a boolean setting may be spelt with (any case, surrounding spaces ignored): the
# environment's JSON gives true/false, but people write "yes" and "on" in files and shells.
_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


def as_bool(key: str, value: Any) -> bool:
    """A boolean setting: true/false, 1/0, or one of `_TRUE_WORDS`/`_FALSE_WORDS` as text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS | _FALSE_WORDS:
            return word in _TRUE_WORDS
    raise ConfigError(key, value, "true or false")


def as_int(key: str, value: Any, minimum: int = 0) -> int:
    """A whole number >= `minimum`: an int, a float with nothing after the point, or ASCII
    digits with an optional sign as text."""
    if isinstance(value, str):
        text = value.strip()
        # Not int(text) alone: it also reads "1_000" and other scripts' digits.
        if _WHOLE_NUMBER.fullmatch(text):
            value = int(text)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(key, value, f"a whole number >= {minimum}")
    return value


def as_seconds(key: str, value: Any, *, allow_zero: bool = False) -> float:
    """A finite number of seconds, > 0 (or >= 0 with `allow_zero`), as a number or text."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            pass
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        raise ConfigError(key, value, "a number of seconds " + (">= 0" if allow_zero else "> 0"))
    return float(value)


def as_url(key: str, value: Any, schemes: tuple[str, ...]) -> str:
    if not isinstance(value, str) or _scheme(value) not in schemes:
        shown = mask_password(value) if isinstance(value, str) else value
        expected = "a URL starting with " + " or ".join(f"{scheme}://" for scheme in schemes)
        raise ConfigError(key, shown, expected)
    return value


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme
    except ValueError:  # "mysql://[::1": unbalanced brackets
        return ""


_BUILTIN_TYPES = ("SimpleCache, RedisCache, RedisSentinelCache, RedisClusterCache, "
                  "MemcachedCache or NullCache")


def as_cache_type(key: str, value: Any) -> str:
    """One of ours, or Flask-Caching's custom type: the import path of a backend factory."""
    name = CACHE_TYPE_ALIASES.get(str(value).lower()) if isinstance(value, str) else None
    if name is not None:
        return name
    refused = _REFUSED_CACHE_TYPES.get(value.lower()) if isinstance(value, str) else None
    if refused is not None:
        raise ConfigError(key, value, refused)
    if isinstance(value, str) and value.startswith("cachelib."):
        raise ConfigError(key, value, f"{_BUILTIN_TYPES}: cachelib's "
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
    raise ConfigError(key, value, f"{_BUILTIN_TYPES}, or the import path of a "
                      "factory(app, config, args, options) returning a backend")


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


#: CACHE_REDIS_SENTINELS when unset, as in Flask-Caching.
DEFAULT_SENTINELS = (("127.0.0.1", 26379),)
#: SIGNALS_BUS_URL's scheme for "the master the sentinels name" (see `sentinel_bus_url`).
SENTINEL_SCHEME = "redis+sentinel"
_SENTINEL_EXPECTED = ('a list of sentinels, each "host:port" or [host, port] '
                      '(a string may list them with commas)')


def _sentinel_address(key: str, item: Any) -> tuple[str, int]:
    if isinstance(item, str):
        host, colon, port = item.strip().rpartition(":")
        if not colon:
            raise ConfigError(key, item, _SENTINEL_EXPECTED + ": the port is missing")
        if host.startswith("[") and host.endswith("]"):  # [IPv6]:port
            host = host[1:-1]
        item = [host, port]
    if not isinstance(item, list | tuple) or len(item) != 2:
        raise ConfigError(key, item, _SENTINEL_EXPECTED)
    host, port = item
    if not isinstance(host, str) or not host or any(char in host for char in ",/ "):
        raise ConfigError(key, item, _SENTINEL_EXPECTED + ": a host name or address")
    try:
        number = as_int(key, port, minimum=1)
    except ConfigError:
        number = 0
    if not 1 <= number <= 65535:
        raise ConfigError(key, item, _SENTINEL_EXPECTED + ": a port from 1 to 65535")
    return host, number


def as_sentinels(key: str, value: Any) -> list[tuple[str, int]]:
    """Flask-Caching's [(host, port), ...]; also "host:port" items, or one "a:1,b:2" string
    (an environment variable)."""
    if value is None:
        return list(DEFAULT_SENTINELS)
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, list | tuple) and len(value) == 2 and not isinstance(
            value[0], list | tuple) and not (isinstance(value[0], str) and ":" in value[0]):
        value = [value]  # one [host, port] pair
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(key, value, _SENTINEL_EXPECTED)
    return [_sentinel_address(key, item) for item in value]


def as_master_name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value or any(char in value for char in "/ "):
        raise ConfigError(key, value, "the name the sentinels monitor the master under "
                          "(sentinel monitor <name> ...), without spaces or slashes")
    return value


def sentinel_bus_url(config: Mapping[str, Any]) -> str:
    """SIGNALS_BUS_URL for the master the sentinels name: `redis+sentinel://h1:p1,h2:p2/
    <master>/<db>`; its passwords are CACHE_REDIS_PASSWORD and CACHE_REDIS_SENTINEL_PASSWORD."""
    hosts = ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                     for host, port in config["CACHE_REDIS_SENTINELS"])
    return (f"{SENTINEL_SCHEME}://{hosts}/{config['CACHE_REDIS_SENTINEL_MASTER']}/"
            f"{config['CACHE_REDIS_DB'] or 0}")


def parse_sentinel_url(url: str) -> tuple[list[tuple[str, int]], str, int]:
    """The sentinels, master name and database of a `redis+sentinel://` URL."""
    parts = urlsplit(url)
    master, _, database = parts.path.strip("/").partition("/")
    return (as_sentinels("SIGNALS_BUS_URL", parts.netloc),
            as_master_name("SIGNALS_BUS_URL", master),
            as_int("SIGNALS_BUS_URL", database or "0"))


#: SIGNALS_BUS_URL's scheme for "the Redis Cluster these nodes belong to".
CLUSTER_SCHEME = "redis+cluster"
_CLUSTER_EXPECTED = ('some nodes of the cluster, each "host:port" or [host, port] (a string '
                     'may list them with commas, as Flask-Caching\'s "host:port,host:port")')


def as_cluster_nodes(key: str, value: Any) -> list[tuple[str, int]] | None:
    """Flask-Caching's "host:port,host:port" startup nodes; also a list of "host:port" or
    [host, port] items. None: unset (RedisClusterCache then refuses to start)."""
    if value in (None, "", []):
        return None
    try:
        return as_sentinels(key, value)
    except ConfigError as error:
        raise ConfigError(key, value, _CLUSTER_EXPECTED + error.expected.removeprefix(
            _SENTINEL_EXPECTED)) from None


def cluster_bus_url(config: Mapping[str, Any]) -> str:
    """SIGNALS_BUS_URL for the cluster of CACHE_REDIS_CLUSTER: `redis+cluster://h1:p1,h2:p2/`;
    its password is CACHE_REDIS_PASSWORD."""
    hosts = ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                     for host, port in config["CACHE_REDIS_CLUSTER"])
    return f"{CLUSTER_SCHEME}://{hosts}/"


def parse_cluster_url(url: str) -> list[tuple[str, int]]:
    """The nodes of a `redis+cluster://` URL (a cluster has no databases: no path)."""
    parts = urlsplit(url)
    if parts.path.strip("/"):
        raise ConfigError("SIGNALS_BUS_URL", url, "a redis+cluster:// URL without a path (a "
                          "cluster has only database 0)")
    nodes = as_cluster_nodes("SIGNALS_BUS_URL", parts.netloc)
    if nodes is None:
        raise ConfigError("SIGNALS_BUS_URL", url, _CLUSTER_EXPECTED)
    return nodes


def as_bus_url(key: str, value: Any) -> str | None:
    if value in (None, ""):
        return None
    url = as_url(key, value, ("redis", "rediss", "unix", SENTINEL_SCHEME, CLUSTER_SCHEME))
    if url.startswith(SENTINEL_SCHEME + "://"):
        parse_sentinel_url(url)
    if url.startswith(CLUSTER_SCHEME + "://"):
        parse_cluster_url(url)
    return url


def as_memcached_servers(key: str, value: Any) -> list[str]:
    """Flask-Caching's list of "host:port" servers; here exactly one.

    aiocache's memcached backend talks to one server. Spreading keys over several would need
    a view's entry and its generation tokens (read in one multi-get) on one server, and a
    server's loss would silently change where keys live: for more capacity, give memcached
    more memory (-m), or use RedisCache.
    """
    if value is None or value == []:
        return ["127.0.0.1:11211"]
    servers = [value] if isinstance(value, str) else value
    if not isinstance(servers, list | tuple) or not all(isinstance(s, str) for s in servers):
        raise ConfigError(key, value, 'a list of "host:port" strings')
    if len(servers) > 1:
        raise ConfigError(key, value, "one server: aiocache's memcached backend talks to one "
                          "(a view's entry and its generation tokens are read in one multi-get, "
                          "so keys are not spread over servers); give that memcached more "
                          "memory (-m), or use RedisCache")
    host, colon, port = servers[0].strip().rpartition(":")
    if not colon:
        host, port = servers[0].strip(), "11211"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(key, value, 'one "host:port", such as "127.0.0.1:11211"')
    return [f"{host}:{port}"]


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
    "TUTORIAL_ROUTES": as_bool,
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
    "CACHE_REDIS_SENTINELS": as_sentinels,
    "CACHE_REDIS_SENTINEL_MASTER": as_master_name,
    "CACHE_REDIS_SENTINEL_PASSWORD": as_optional_text,
    "CACHE_REDIS_CLUSTER": as_cluster_nodes,
    "CACHE_MEMCACHED_SERVERS": as_memcached_servers,
    "CACHE_MEMCACHED_USERNAME": as_optional_text,
    "CACHE_MEMCACHED_PASSWORD": as_optional_text,
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
    "SHUTDOWN_TIMEOUT": lambda key, value: as_seconds(key, value, allow_zero=True),
    "NOTIFY_DELAY": lambda key, value: as_seconds(key, value, allow_zero=True),
    "VISITS_FLUSH_INTERVAL": as_seconds,
    "SIGNALS_BUS_URL": as_bus_url,
    "SIGNALS_BUS_CHANNEL": as_prefix,
    "WORKERS": lambda key, value: as_int(key, value, minimum=1),
}


def validate(config: MutableMapping[str, Any]) -> None:
    """Check and normalise every known setting; refuse CACHE_* names we do not implement."""
    for key, check in _VALIDATORS.items():
        config[key] = check(key, config[key])
    _check_cache_settings(config)
    stop, background = config["SHUTDOWN_TIMEOUT"], config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"]
    if stop and stop <= background:
        raise ConfigError("SHUTDOWN_TIMEOUT", stop,
                          f"0 (no limit) or more than BACKGROUND_TASK_SHUTDOWN_TIMEOUT "
                          f"({background:g} s), which the stop waits first")
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
    for key in ("CACHE_MEMCACHED_USERNAME", "CACHE_MEMCACHED_PASSWORD"):
        if config[key]:
            raise ConfigError(key, "<hidden>" if key.endswith("PASSWORD") else config[key],
                              f"unset: {_NO_SASL}")
    builtin = config["CACHE_TYPE"] in CACHE_TYPE_ALIASES.values()
    if builtin and config["CACHE_ARGS"]:
        raise ConfigError("CACHE_ARGS", config["CACHE_ARGS"], "an empty list: positional "
                          "arguments go to a custom CACHE_TYPE factory only; use CACHE_OPTIONS "
                          "or the CACHE_* settings for " + config["CACHE_TYPE"])
    _apply_backend_options(config, builtin)
    config["CACHE_REDIS_URL"] = resolve_redis_url(config)
    if config["CACHE_TYPE"] == "RedisClusterCache":
        _check_cluster_settings(config)


def _check_cluster_settings(config: Mapping[str, Any]) -> None:
    if not config["CACHE_REDIS_CLUSTER"]:
        raise ConfigError("CACHE_REDIS_CLUSTER", None, "some nodes of the cluster for "
                          'RedisClusterCache, e.g. "10.0.0.1:7000,10.0.0.2:7000"')
    if config["CACHE_REDIS_DB"]:
        raise ConfigError("CACHE_REDIS_DB", config["CACHE_REDIS_DB"], "0 or unset: a Redis "
                          "Cluster has only database 0")
    replica_reads = sorted(set(config["CACHE_OPTIONS"] or ()) & {"read_from_replicas",
                                                                   "load_balancing_strategy"})
    if replica_reads:
        raise ConfigError(f"CACHE_OPTIONS.{replica_reads[0]}",
                          config["CACHE_OPTIONS"][replica_reads[0]],
                          "unset for RedisClusterCache: replication is asynchronous, so a read "
                          "from a replica can find an entry an acknowledged insert just "
                          "invalidated on the master (reads go to masters)")
    prefix = config["CACHE_KEY_PREFIX"]
    if "{" in prefix and "}" in prefix.partition("{")[2]:
        raise ConfigError("CACHE_KEY_PREFIX", prefix, "a prefix without a {hash tag} for "
                          "RedisClusterCache: it would put every key in one slot, on one master "
                          "(views' keys carry hash tags of their own)")


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
    if others and config["CACHE_TYPE"] not in REDIS_CACHE_TYPES:
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
    """The local tier sits in front of a shared cache, and its evictions travel on the
    signal bus, which needs Redis pub/sub."""
    if config["CACHE_TYPE"] not in SHARED_CACHE_TYPES:
        raise ConfigError("CACHE_LOCAL", True, "CACHE_TYPE = 'RedisCache', "
                          "'RedisSentinelCache', 'RedisClusterCache' or 'MemcachedCache' (the "
                          "local tier sits "
                          "in front of a shared cache; "
                          f"{config['CACHE_TYPE']} is already local)")
    if config["CACHE_TYPE"] == "MemcachedCache" and not config["SIGNALS_BUS_URL"]:
        raise ConfigError("CACHE_LOCAL", True, "SIGNALS_BUS_URL set to a Redis URL as well: "
                          "the local tier's evictions travel on the signal bus, and memcached "
                          "has no pub/sub to carry them")
    if not config["SIGNALS_BUS_URL"]:
        config["SIGNALS_BUS_URL"] = (sentinel_bus_url(config)
                                     if config["CACHE_TYPE"] == "RedisSentinelCache"
                                     else cluster_bus_url(config)
                                     if config["CACHE_TYPE"] == "RedisClusterCache"
                                     else config["CACHE_REDIS_URL"])


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
