"""Settings: the layers and their order, the tutorial's own config, and bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from quart_app import create_app
from quart_app.config import DEFAULTS, mask_password
from quart_app.errors import ConfigError


def test_defaults() -> None:
    app = create_app()
    assert app.config["CACHE_TYPE"] == "SimpleCache"
    assert app.config["CACHE_DEFAULT_TIMEOUT"] == 300
    assert app.config["DEBUG"] is False
    # No key in the environment: a random one per process, never a fixed default.
    assert len(app.config["SECRET_KEY"]) >= 32
    assert create_app().config["SECRET_KEY"] != app.config["SECRET_KEY"]
    assert app.config["TUTORIAL_ROUTES"] is True


def test_layers_file_then_environment_then_mapping(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file.write_text(
        'CACHE_DEFAULT_TIMEOUT = 60\nCACHE_KEY_PREFIX = "file:"\nCACHE_THRESHOLD = 10\n'
        "[DATABASE_POOL]\nmaxconnections = 6\nmincached = 1\n"
        '[hypercorn]\nbind = ["0.0.0.0:1"]\n'
    )
    monkeypatch.setenv("QUART_CACHE_KEY_PREFIX", "env:")
    monkeypatch.setenv("QUART_CACHE_THRESHOLD", "20")
    monkeypatch.setenv("QUART_DATABASE_POOL__MAXCONNECTIONS", "12")
    app = create_app({"CACHE_THRESHOLD": 30, "DATABASE_POOL": {"maxcached": 4}})
    assert app.config["CACHE_DEFAULT_TIMEOUT"] == 60  # file over default
    assert app.config["CACHE_KEY_PREFIX"] == "env:"  # environment over file
    assert app.config["CACHE_THRESHOLD"] == 30  # mapping over environment
    # Nested tables merge key by key across the layers.
    assert app.config["DATABASE_POOL"] == {
        "maxconnections": 6, "mincached": 1, "MAXCONNECTIONS": 12, "maxcached": 4
    }
    assert "hypercorn" not in app.config and "HYPERCORN" not in app.config
    assert "APP_SETTINGS" not in app.config


def test_the_tutorials_config_dict_works_unchanged() -> None:
    app = create_app({"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 300})
    assert app.config["CACHE_TYPE"] == "SimpleCache"


@pytest.mark.parametrize(
    ("given", "meant"),
    [("simple", "SimpleCache"), ("RedisCache", "RedisCache"), ("redis", "RedisCache"),
     ("flask_caching.backends.RedisCache", "RedisCache"), ("NullCache", "NullCache")],
)
def test_flask_caching_backend_names_are_accepted(given: str, meant: str) -> None:
    settings = {"CACHE_TYPE": given, "CACHE_NO_NULL_WARNING": True}
    assert create_app(settings).config["CACHE_TYPE"] == meant


def test_the_repos_settings_file_is_loaded_and_valid() -> None:
    app = create_app()
    assert app.config["DATABASE_POOL"]["maxconnections"] == 6
    assert app.config["DATABASE_URL"].startswith("sqlite:///")


def test_defaults_are_not_shared_between_apps(settings_file: Path) -> None:
    settings_file.write_text("")
    first = create_app({"DATABASE_POOL": {"maxconnections": 9}})
    second = create_app()
    assert first.config["DATABASE_POOL"] == {"maxconnections": 9}
    assert DEFAULTS["DATABASE_POOL"] == {}
    assert second.config["DATABASE_POOL"] != first.config["DATABASE_POOL"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"CACHE_TYPE": "Couchbase"},
         "bad setting CACHE_TYPE = 'Couchbase': expected SimpleCache, RedisCache, "
         "RedisSentinelCache, RedisClusterCache, MemcachedCache or NullCache, or the import "
         "path of a factory"),
        ({"CACHE_DEFAULT_TIMEOUT": -1},
         "bad setting CACHE_DEFAULT_TIMEOUT = -1: expected a whole number >= 0"),
        ({"CACHE_THRESHOLD": "many"},
         "bad setting CACHE_THRESHOLD = 'many': expected a whole number >= 1"),
        ({"CACHE_IGNORE_ERRORS": "maybe"},
         "bad setting CACHE_IGNORE_ERRORS = 'maybe': expected true or false"),
        ({"CACHE_KEY_PREFIX": ""}, "bad setting CACHE_KEY_PREFIX = ''"),
        ({"CACHE_REDIS_URL": "http://x"},
         "bad setting CACHE_REDIS_URL = 'http://x': expected a URL starting with redis://"),
        ({"CACHE_REDIS_SOMETHING": "h"},
         "bad setting CACHE_REDIS_SOMETHING = 'h': expected a supported cache setting"),
        ({"CACHE_SERIALIZER": "pickle"},
         "bad setting CACHE_SERIALIZER = 'pickle': expected nothing: values are always stored "
         "as tagged JSON"),
        ({"CACHE_TYPE": "nowhere.factory"},
         "bad setting CACHE_TYPE = 'nowhere.factory': expected an importable backend factory"),
        ({"CACHE_ARGS": [1]}, "bad setting CACHE_ARGS = [1]: expected an empty list"),
        ({"CACHE_TYPE": "cachelib.RedisCache"},
         "bad setting CACHE_TYPE = 'cachelib.RedisCache': expected SimpleCache, RedisCache, "
         "RedisSentinelCache, RedisClusterCache, MemcachedCache or NullCache: cachelib's "
         "backends block the event loop"),
        ({"CACHE_OPTIONS": {"socket_keepalive": True}},
         "bad setting CACHE_OPTIONS = {'socket_keepalive': True}: expected only default_timeout"),
        ({"CACHE_REDIS_PORT": "six"}, "bad setting CACHE_REDIS_PORT = 'six'"),
        ({"CACHE_HASH_METHOD": "hashlib.nothing"},
         "bad setting CACHE_HASH_METHOD = 'hashlib.nothing': expected a hashlib constructor"),
        ({"CACHE_REDIS_HOST": 6379}, "bad setting CACHE_REDIS_HOST = 6379: expected a host name"),
        ({"DATABASE_URL": "postgres://u:secret@h/db"},
         "bad setting DATABASE_URL = 'postgres://u:***@h/db'"),
        ({"LOG_LEVEL": "LOUD"}, "bad setting LOG_LEVEL = 'LOUD'"),
        ({"SHUTDOWN_TIMEOUT": -1}, "bad setting SHUTDOWN_TIMEOUT = -1: expected a number of "
         "seconds >= 0"),
        ({"SHUTDOWN_TIMEOUT": 5}, "bad setting SHUTDOWN_TIMEOUT = 5.0: expected 0 (no limit) "
         "or more than BACKGROUND_TASK_SHUTDOWN_TIMEOUT (5 s), which the stop waits first"),
    ],
)
def test_bad_settings_stop_start_up_with_one_clear_line(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        create_app(overrides)
    text = str(raised.value)
    assert text.startswith(message)
    assert "\n" not in text
    assert "secret" not in text


def test_environment_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUART_CACHE_IGNORE_ERRORS", "false")
    monkeypatch.setenv("QUART_CACHE_TYPE", "RedisCache")
    monkeypatch.setenv("QUART_CACHE_REDIS_TIMEOUT", "0.5")
    app = create_app()
    assert app.config["CACHE_IGNORE_ERRORS"] is False
    assert app.config["CACHE_TYPE"] == "RedisCache"
    assert app.config["CACHE_REDIS_TIMEOUT"] == 0.5


def test_secret_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUART_SECRET_KEY", "from-env")
    assert create_app().config["SECRET_KEY"] == "from-env"


def test_secret_key_in_a_settings_file_is_refused(settings_file: Path) -> None:
    settings_file.write_text('SECRET_KEY = "committed"\n')
    with pytest.raises(ConfigError, match="SECRET_KEY = '<hidden>': expected set only in the env"):
        create_app()


@pytest.mark.parametrize(("key", "url"), [
    ("DATABASE_URL", "mysql://root:hunter2@127.0.0.1/school"),
    ("CACHE_REDIS_URL", "redis://127.0.0.1:6379/0?password=hunter2"),
])
def test_password_in_a_settings_file_url_is_refused(
    settings_file: Path, key: str, url: str
) -> None:
    settings_file.write_text(f'{key} = "{url}"\n')
    with pytest.raises(ConfigError) as raised:
        create_app()
    assert "hunter2" not in str(raised.value)
    assert f"set QUART_{key}" in str(raised.value)


@pytest.mark.parametrize(("url", "shown"), [
    ("mysql://u:pw@h:3306/db", "mysql://u:***@h:3306/db"),
    ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
    ("mysql://u:p@ss@h/db", "mysql://u:***@h/db"),
    ("mysql://u:p/w@h/db", "mysql://u:***@h/db"),
    ("mysql://u:p?w@h/db", "mysql://u:***@h/db"),
    ("mysql://u:pw@[::1/db", "mysql://u:***@[::1/db"),
    ("mysql://u@h/db", "mysql://u@h/db"),
    ("mysql://u:@h/db", "mysql://u:@h/db"),
    ("sqlite:///a:b@c.sqlite3", "sqlite:///a:b@c.sqlite3"),
    ("not a url", "not a url"),
    ("redis://h:6379/0?password=pw", "redis://h:6379/0?password=***"),
    ("redis://h/0?db=1&Password=p@w&x=1", "redis://h/0?db=1&Password=***&x=1"),
    ("redis+sentinel://h:26379/m?sentinel_password=pw#f", "redis+sentinel://h:26379/m?sentinel_password=***#f"),
    ("redis://u:pw@h/0?password=pw2", "redis://u:***@h/0?password=***"),
    ("redis://h/0?passwords_file=/x", "redis://h/0?passwords_file=***"),
])
def test_mask_password_hides_the_password_of_any_url(url: str, shown: str) -> None:
    assert mask_password(url) == shown


def test_a_refused_url_is_shown_without_its_password(settings_file: Path) -> None:
    settings_file.write_text("")
    with pytest.raises(ConfigError) as raised:
        create_app({"DATABASE_URL": "mysql://u:hun@ter2@[::1/db"})
    assert str(raised.value).startswith("bad setting DATABASE_URL = 'mysql://u:***@[::1/db'")
    settings_file.write_text('SIGNALS_BUS_URL = "redis://u:hun@ter2@127.0.0.1:6379/0"\n')
    with pytest.raises(ConfigError) as raised:
        create_app()
    assert "ter2" not in str(raised.value)
    assert "set QUART_SIGNALS_BUS_URL" in str(raised.value)


def test_password_in_the_environment_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUART_CACHE_REDIS_URL", "redis://:pw@127.0.0.1:6379/0")
    assert create_app().config["CACHE_REDIS_URL"] == "redis://:pw@127.0.0.1:6379/0"


def test_missing_named_settings_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUART_APP_SETTINGS", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="QUART_APP_SETTINGS"):
        create_app()


def test_broken_settings_file_is_an_error(settings_file: Path) -> None:
    settings_file.write_text("CACHE_TYPE = \n")
    with pytest.raises(ConfigError, match="a readable TOML file"):
        create_app()


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("QUART_CAHCE_TYPE", " (did you mean QUART_CACHE_TYPE?)"),
     ("QUART_DATABSE_URL", " (did you mean QUART_DATABASE_URL?)"),
     ("QUART_HYPERCORN_WORKERS", " (did you mean QUART_HYPERCORN__WORKERS?)"),
     ("QUART_NOTHING_LIKE_IT", "")],
)
def test_an_unknown_environment_name_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, name: str, suggestion: str
) -> None:
    monkeypatch.setenv(name, "mysql://root:hunter2@h/db")
    with pytest.raises(ConfigError) as raised:
        create_app()
    assert str(raised.value) == (
        f"bad setting {name} = '<hidden>': expected a known setting{suggestion}"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("QUART_APP_SETTINGS", None), ("QUART_APP", "quart_app:create_app()"),
     ("QUART_APP_TEST_REDIS_URL", "redis://x"), ("QUART_WORKERS", "2"),
     ("QUART_HYPERCORN__WORKERS", "2"), ("QUART_RUN_PORT", "5000"),
     ("QUART_SKIP_DOTENV", "1"), ("QUART_DEBUG", "false"), ("QUART_TESTING", "true"),
     ("QUART_BODY_TIMEOUT", "30"), ("QUART_QUART_SCHEMA_CONVERT_CASING", "true")],
)
def test_names_of_quart_and_of_this_project_are_known(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str | None
) -> None:
    monkeypatch.setenv(name, value or str(Path(__file__).parent.parent / "settings.toml"))
    app = create_app()
    assert "HYPERCORN" not in app.config and "RUN_PORT" not in app.config


def test_seed_routes_is_accepted_as_the_old_name_of_tutorial_routes(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file.write_text("")
    assert create_app({"SEED_ROUTES": False}).config["TUTORIAL_ROUTES"] is False
    assert "SEED_ROUTES" not in create_app({"SEED_ROUTES": False}).config
    settings_file.write_text("SEED_ROUTES = false\n")
    assert create_app().config["TUTORIAL_ROUTES"] is False
    # Each layer's old name sets the new one there; a later layer still wins.
    monkeypatch.setenv("QUART_TUTORIAL_ROUTES", "true")
    assert create_app().config["TUTORIAL_ROUTES"] is True
    settings_file.write_text("TUTORIAL_ROUTES = true\n")
    monkeypatch.setenv("QUART_SEED_ROUTES", "false")
    monkeypatch.delenv("QUART_TUTORIAL_ROUTES")
    assert create_app().config["TUTORIAL_ROUTES"] is False


def test_both_names_in_one_layer_must_agree() -> None:
    app = create_app({"SEED_ROUTES": "yes", "TUTORIAL_ROUTES": True})
    assert app.config["TUTORIAL_ROUTES"] is True
    with pytest.raises(ConfigError) as raised:
        create_app({"SEED_ROUTES": False, "TUTORIAL_ROUTES": True})
    assert str(raised.value) == ("bad setting SEED_ROUTES = False: expected the value of "
                                 "TUTORIAL_ROUTES (True), its new name, or only one of the two")
