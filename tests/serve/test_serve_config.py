"""`routellm serve` settings: the config file, flags over it, clear errors for bad settings, and
several workers behind one port."""

from __future__ import annotations

import json
import re
import time

import openai
import pytest
from serve_helpers import CLIENT_KEY, start_router_server

from routellm_base.cli import build_parser, main
from routellm_base.serve import ServeConfig, ServeConfigError, UpstreamConfig, config_from_args
from routellm_base.serve.config import read_config_file

TOML = """
router = "mf"
strong_share = 0.3
max_retries = 1

[strong]
base_url = "{url}"
model = "strong-m"

[weak]
base_url = "{url}"
model = "weak-m"
api_key_env = "TEST_WEAK_KEY"
"""


def _config(argv: list[str]) -> ServeConfig:
    return config_from_args(build_parser().parse_args(["serve", *argv]))


def test_flags_override_the_config_file(tmp_path):
    path = tmp_path / "serve.toml"
    path.write_text(TOML.format(url="http://127.0.0.1:9/v1"))
    config = _config(
        ["--config", str(path), "--threshold", "0.2", "--weak-model", "other-m", "--workers", "3"]
    )
    assert (
        config.threshold == 0.2 and config.strong_share is None
    )  # the flag's policy replaces the file's
    assert config.weak == UpstreamConfig("http://127.0.0.1:9/v1", "other-m", "TEST_WEAK_KEY")
    assert config.strong.model == "strong-m" and config.workers == 3 and config.max_retries == 1
    assert config.host == "127.0.0.1" and config.fallback
    assert not _config(["--config", str(path), "--no-fallback"]).fallback
    json_path = tmp_path / "serve.json"
    json_path.write_text(json.dumps({"strong": {"base_url": "https://a/v1", "model": "a"},
                                     "weak": {"base_url": "https://b/v1", "model": "b"}}))  # fmt: skip
    assert _config(["--config", str(json_path)]).weak.base_url == "https://b/v1"
    # The settings travel to worker processes as JSON unchanged.
    assert ServeConfig.from_json(config.to_json()) == config


def test_cors_origins_and_the_pool_timeout_come_from_flags_or_the_file(tmp_path):
    path = tmp_path / "serve.toml"
    path.write_text(
        TOML.format(url="http://127.0.0.1:9/v1").replace(
            "max_retries = 1", 'max_retries = 1\ncors_origins = ["https://a.example"]'
        )
    )
    from_file = _config(["--config", str(path)])
    assert from_file.cors_origins == ("https://a.example",)
    assert from_file.pool_timeout is None  # waits for a pooled connection up to --timeout
    flags = _config(["--config", str(path), "--cors-origin", "https://b.example",
                     "--cors-origin", "http://localhost:3000", "--pool-timeout", "2.5"])  # fmt: skip
    assert flags.cors_origins == ("https://b.example", "http://localhost:3000")  # flags win
    assert flags.pool_timeout == 2.5
    assert ServeConfig.from_json(flags.to_json()) == flags  # as sent to --workers processes


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"weak": None}, "the weak side is missing"),
        ({"colour": "blue"}, "unknown key(s) in test: ['colour']"),
        (
            {"weak": {"base_url": "http://a/v1", "model": "a", "key": "x"}},
            "unknown key(s) in test [weak]: ['key']",
        ),
        (
            {"weak": {"base_url": "ftp://a", "model": "a"}},
            "weak base_url must be an http:// or https:// URL",
        ),
        ({"weak": {"base_url": "http://a/v1"}}, "weak needs ['model']"),
        ({"threshold": 0.3, "strong_share": 0.2}, "either threshold or strong_share"),
        ({"strong_share": 1.5}, "strong_share must be in [0, 1]"),
        ({"workers": 0}, "workers must be an integer in [1, 256]"),
        ({"port": 70000}, "port must be an integer"),
        ({"timeout": 0}, "timeout must be a positive number of seconds"),
        ({"max_body_bytes": 10}, "max_body_bytes must be an integer"),
        ({"log_level": "loud"}, "log_level must be"),
        (
            {"cors_origins": ["http://localhost:3000/"]},
            "cors_origins: 'http://localhost:3000/' must be",
        ),
        ({"cors_origins": ["chat.example.com"]}, "cors_origins: 'chat.example.com' must be"),
        ({"cors_origins": "https://a.example"}, "cors_origins must be a list of origins"),
        ({"pool_timeout": -1}, "pool_timeout must be a positive number of seconds"),
        ({"host": 5}, "host must be an address to bind"),
        ({"host": ""}, "host must be an address to bind"),
        ({"host": None}, "host must be an address to bind"),
        ({"log": 5}, "log must be a routing log's SQLite path or SQLAlchemy URL, got 5"),
        ({"log": ""}, "log must be a routing log's SQLite path or SQLAlchemy URL, got ''"),
        ({"log": "x.db", "log_store_prompts": "yes"}, "log_store_prompts must be true or false"),
    ],
)
def test_bad_settings_are_refused_by_name(settings, message):
    base = {
        "strong": {"base_url": "http://a/v1", "model": "a"},
        "weak": {"base_url": "http://b/v1", "model": "b"},
    }
    with pytest.raises((ServeConfigError, ValueError)) as info:
        ServeConfig.from_mapping({**base, **settings}, "test")
    assert message in str(info.value)


def test_bad_config_files_are_refused(tmp_path, capsys):
    for name, text, message in [
        ("a.yaml", "x: 1", "must end in .toml or .json"),
        ("b.toml", "router = ", "not valid TOML"),
        ("c.json", "{", "not valid JSON"),
        ("d.json", "[1]", "must hold a table of settings"),
    ]:
        (tmp_path / name).write_text(text)
        with pytest.raises(ServeConfigError, match=re.escape(message)):
            _config(["--config", str(tmp_path / name)])
    # Refused when parsed, naming --config (a folder was said not to exist).
    for path, message in ((tmp_path / "missing.toml", "no such file"), (tmp_path, "is a folder")):
        with pytest.raises(SystemExit):
            _config(["--config", str(path)])
        assert "argument --config: " in (err := capsys.readouterr().err) and message in err


def test_unset_key_variables_stop_start_up(monkeypatch, capsys):
    monkeypatch.delenv("ROUTELLM_TEST_UNSET", raising=False)
    sides = ["--strong-base-url", "http://127.0.0.1:9/v1", "--strong-model", "s",
             "--weak-base-url", "http://127.0.0.1:9/v1", "--weak-model", "w"]  # fmt: skip
    assert main(["serve", *sides, "--api-key-env", "ROUTELLM_TEST_UNSET"]) == 2
    assert "ROUTELLM_TEST_UNSET (api_key_env) is not set" in capsys.readouterr().err
    assert main(["serve", *sides, "--strong-api-key-env", "ROUTELLM_TEST_UNSET"]) == 2
    assert "ROUTELLM_TEST_UNSET (strong api_key_env) is not set" in capsys.readouterr().err
    monkeypatch.setenv("ROUTELLM_TEST_EMPTY_KEYS", " , ")
    assert main(["serve", *sides, "--api-key-env", "ROUTELLM_TEST_EMPTY_KEYS"]) == 2
    assert "holds no key" in capsys.readouterr().err
    assert main(["serve", "--strong-model", "s"]) == 2
    assert (
        "strong needs ['base_url'] ([strong] in a config file, or --strong-base-url"
        in capsys.readouterr().err
    )
    assert main(["serve"]) == 2
    assert "the strong side is missing" in capsys.readouterr().err


def test_two_workers_from_a_config_file_share_one_port(scripted_upstream, tmp_path):
    scripted_upstream.reset()
    path = tmp_path / "serve.toml"
    path.write_text(TOML.format(url=scripted_upstream.url))
    # With a log storing prompts: the routers are checked before the workers start without it.
    args = ["--config", str(path), "--workers", "2", "--api-key-env", "TEST_CLIENT_KEYS",
            "--log", str(tmp_path / "log.db"), "--log-store-prompts"]  # fmt: skip
    server = start_router_server(
        args,
        tmp_path / "server.log",
        env={"TEST_WEAK_KEY": "sk-weak", "TEST_CLIENT_KEYS": CLIENT_KEY},
    )
    try:
        client = openai.OpenAI(base_url=f"{server.base}/v1", api_key=CLIENT_KEY, max_retries=0)
        for i in range(8):
            completion = client.chat.completions.create(
                model="router-mf-1.0", messages=[{"role": "user", "content": f"q{i}"}]
            )
            assert completion.choices[0].message.content == f"weak-m: q{i}"
        deadline = time.monotonic() + 30
        while (
            server.log().count("Application startup complete") < 2 and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert server.log().count("Application startup complete") == 2  # two worker processes
        assert {r["authorization"] for r in scripted_upstream.requests()} == {"Bearer sk-weak"}
    finally:
        server.stop()


def test_config_errors_name_the_command_line_only_when_a_flag_was_given(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(TOML.format(url="http://127.0.0.1:9/v1") + "[pool]\nrouter = 3\n")
    with pytest.raises(ServeConfigError) as alone:
        _config(["--config", str(path)])
    assert f"{path}: pool.models must list at least one model" in str(alone.value)
    assert "command line" not in str(alone.value)
    # Only the file sets a [pool], an unknown key or a [weak] table: a flag does not change that.
    with pytest.raises(ServeConfigError) as flag:
        _config(["--config", str(path), "--port", "7000"])
    assert f"{path}: pool.models" in str(flag.value) and "command line" not in str(flag.value)
    path.write_text(TOML.format(url="http://127.0.0.1:9/v1").replace("max_retries", "max_retrys"))
    with pytest.raises(ServeConfigError) as unknown:
        _config(["--config", str(path), "--port", "7000"])
    assert f"unknown key(s) in {path}: ['max_retrys']" in str(unknown.value)
    path.write_text(
        TOML.format(url="http://127.0.0.1:9/v1").replace("[weak]", "[weak]\ncolour = 1")
    )
    with pytest.raises(ServeConfigError) as side:
        _config(["--config", str(path), "--weak-model", "w"])
    assert f"unknown key(s) in {path} [weak]: ['colour']" in str(side.value)
    # A setting both could give names both.
    path.write_text("[strong]\nbase_url = 'http://127.0.0.1:9/v1'\nmodel = 's'\n")
    with pytest.raises(ServeConfigError) as both:
        _config(["--config", str(path), "--weak-model", "w"])
    assert f"{path} and the command line: weak needs ['base_url']" in str(both.value)


def test_serve_help_tells_of_the_pool_section():
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # noqa: SLF001
    text = " ".join(serve.format_help().split())
    assert "[pool]" in text and "[[pool.models]]" in text
    assert "zero_shot" in text and "pool_knn" in text and "routellm train pool" in text


POOL_ONLY = """
[pool]
cost_weight = 0.02

[[pool.models]]
name = "a"
base_url = "http://127.0.0.1:9/v1"
model = "a"
input_price = 1
output_price = 2
"""


@pytest.mark.parametrize(
    ("flags", "named", "policy"),
    [
        (
            ["--strong-share", "0.3", "--share-window", "50"],
            "['strong_share', 'share_window']",
            (None, 0.3, 50),
        ),
        (["--threshold", "0.3"], "['threshold']", (0.3, None, None)),
    ],
)
def test_two_model_options_are_refused_when_the_config_routes_only_a_pool(
    tmp_path, flags, named, policy
):
    path = tmp_path / "pool.toml"
    path.write_text(POOL_ONLY)
    # (config_from_args: before the fix main() would start serving; main turns this into exit 2)
    with pytest.raises(ServeConfigError) as info:
        _config(["--config", str(path), *flags])
    assert named in str(info.value) and "routes only a [pool]" in str(info.value)
    # The same keys in the file are refused too.
    path.write_text("strong_share = 0.3\n" + POOL_ONLY)
    with pytest.raises(ServeConfigError) as info:
        _config(["--config", str(path)])
    assert "['strong_share']" in str(info.value) and "routes only a [pool]" in str(info.value)
    # Beside a strong/weak pair they set the pair's policy.
    pair = TOML.format(url="http://127.0.0.1:9/v1")
    path.write_text(pair + POOL_ONLY)
    config = _config(["--config", str(path), *flags])
    assert config.pair and config.pool is not None
    assert (config.threshold, config.strong_share, config.share_window) == policy


def test_pool_settings_without_a_pool_are_refused(tmp_path):
    path = tmp_path / "serve.toml"
    path.write_text("cost_weight = 0.02\n" + TOML.format(url="http://127.0.0.1:9/v1"))
    with pytest.raises(ServeConfigError, match=re.escape("unknown key(s) in ")):
        _config(["--config", str(path)])


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("strong_share = 0.3", 'strong_share = "0.3"', "strong_share must be"),
        ("strong_share = 0.3", "strong_share = 30", "strong_share must be"),
        ("max_retries = 1", "max_retries = 99", "max_retries must be an integer"),
        ("max_retries = 1", "max_retries = 1\ncors_origins = ['x']", "cors_origins: 'x' must be"),
        ('model = "weak-m"', 'model = ""', "weak model must be a non-empty string"),
    ],
)
def test_bad_config_file_values_name_the_file(tmp_path, capsys, old, new, message):
    path = tmp_path / "serve.toml"
    path.write_text(TOML.format(url="http://127.0.0.1:9/v1").replace(old, new))
    assert main(["serve", "--config", str(path)]) == 2
    assert f"routellm: error: {path}: {message}" in capsys.readouterr().err
    # A flag elsewhere does not hide which file the bad value came from.
    with pytest.raises(ServeConfigError, match=re.escape(f"{path}: {message}")):
        _config(["--config", str(path), "--port", "7000"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "0"], "--workers: workers must be an integer in [1, 256], got 0"),
        (["--threshold", "1.5"], "--threshold: threshold must be in [0, 1]"),
        (["--weak-base-url", "ftp://b"], "--weak-base-url: weak base_url must be an http://"),
        (["--cors-origin", "x"], "--cors-origin: cors_origins: 'x' must be"),
    ],
)
def test_bad_flag_values_name_the_flag_not_the_file(tmp_path, flags, message):
    path = tmp_path / "serve.toml"
    path.write_text(TOML.format(url="http://127.0.0.1:9/v1"))
    with pytest.raises(ServeConfigError) as info:
        _config(["--config", str(path), *flags])
    assert str(info.value).startswith(message) and str(path) not in str(info.value)


def test_a_budget_window_without_a_budget_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "pool.toml"
    path.write_text(POOL_ONLY.replace("cost_weight = 0.02", "budget_window = 50"))
    # (config_from_args: before the fix main() would start serving)
    with pytest.raises(ServeConfigError) as info:
        _config(["--config", str(path)])
    error = str(info.value)
    assert f"{path}: pool policy: budget_window is the window a budget is held over" in error
    assert "give budget too" in error
    path.write_text(POOL_ONLY.replace("cost_weight = 0.02", "budget = 3\nbudget_window = 50"))
    assert _config(["--config", str(path)]).pool.policy().budget_window == 50


def _no_server(monkeypatch) -> None:
    """Make starting uvicorn fail the test: a setting refused must stop start-up before it."""
    import uvicorn

    def no_server(*args, **kwargs):
        raise AssertionError("uvicorn started: the settings were not refused")

    monkeypatch.setattr(uvicorn, "run", no_server)


def test_storing_prompts_without_a_log_is_refused_naming_where_it_came_from(
    tmp_path, capsys, monkeypatch
):
    _no_server(monkeypatch)
    path = tmp_path / "serve.toml"
    path.write_text(TOML.format(url="http://127.0.0.1:9/v1"))
    # The flag: nothing would be logged, no prompt stored.
    with pytest.raises(ServeConfigError) as flag:
        _config(["--config", str(path), "--log-store-prompts"])
    assert str(flag.value).startswith("--log-store-prompts: log_store_prompts stores prompt text")
    assert "does not apply without one" in str(flag.value) and "--log" in str(flag.value)
    # The file's key, also with a flag elsewhere.
    path.write_text("log_store_prompts = true\n" + TOML.format(url="http://127.0.0.1:9/v1"))
    for flags in ([], ["--port", "7000"]):
        with pytest.raises(ServeConfigError) as file:
            _config(["--config", str(path), *flags])
        assert str(file.value).startswith(f"{path}: log_store_prompts stores prompt text")
    assert main(["serve", "--config", str(path)]) == 2
    assert f"routellm: error: {path}: log_store_prompts" in capsys.readouterr().err
    # With a log it applies.
    config = _config(["--config", str(path), "--log", str(tmp_path / "log.db")])
    assert config.log_store_prompts and config.log == str(tmp_path / "log.db")
    assert ServeConfig.from_json(config.to_json()) == config  # as sent to --workers processes


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("host = 5", "host must be an address to bind, e.g. '127.0.0.1'"),
        ('host = ""', "host must be an address to bind"),
        ("log = 5", "log must be a routing log's SQLite path or SQLAlchemy URL, got 5"),
        ("log = true", "log must be a routing log's SQLite path or SQLAlchemy URL, got True"),
        ('log = "x.db"\nlog_store_prompts = "yes"', "log_store_prompts must be true or false"),
    ],
)
def test_settings_of_the_wrong_type_are_refused_naming_the_file(
    tmp_path, capsys, monkeypatch, line, message
):
    # host = 5 used to reach uvicorn and end in uvloop's "TypeError: host must be a str or bytes"
    _no_server(monkeypatch)
    path = tmp_path / "serve.toml"
    path.write_text(line + "\n" + TOML.format(url="http://127.0.0.1:9/v1"))
    with pytest.raises(ServeConfigError, match=re.escape(f"{path}: {message}")):
        _config(["--config", str(path), "--port", "7000"])
    assert main(["serve", "--config", str(path)]) == 2
    assert f"routellm: error: {path}: {message}" in capsys.readouterr().err


WEAK_TABLE = '[weak]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "weak-m"\n'
STRONG_TABLE = '[strong]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "strong-m"\n'
NOT_A_TABLE = "{0} must be a table ([{0}]) with base_url and model, got "


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            'strong = "x"\n' + WEAK_TABLE, NOT_A_TABLE.format("strong") + "'x'", id="strong-string"
        ),
        pytest.param(
            'strong = ["x"]\n' + WEAK_TABLE,
            NOT_A_TABLE.format("strong") + "['x']",
            id="strong-list",
        ),
        pytest.param(
            "weak = 5\n" + STRONG_TABLE, NOT_A_TABLE.format("weak") + "5", id="weak-number"
        ),
        pytest.param(
            "weak = true\n" + STRONG_TABLE, NOT_A_TABLE.format("weak") + "True", id="weak-bool"
        ),
        pytest.param(
            'strong = ""\n' + WEAK_TABLE,
            NOT_A_TABLE.format("strong") + "''",
            id="strong-empty-string",
        ),
        pytest.param(
            "strong = []\n" + WEAK_TABLE,
            NOT_A_TABLE.format("strong") + "[]",
            id="strong-empty-list",
        ),
        pytest.param(
            'strong = "x"\n' + POOL_ONLY,
            NOT_A_TABLE.format("strong") + "'x'",
            id="strong-string-beside-pool",
        ),
        pytest.param(
            'pool = "x"\n' + STRONG_TABLE + WEAK_TABLE,
            "pool must be a table with models ([pool])",
            id="pool-string",
        ),
        pytest.param(
            '[pool]\nmodels = ["x"]\n',
            "pool.models[0] must be a table, got 'x'",
            id="pool-model-string",
        ),
    ],
)
def test_a_table_given_as_another_type_is_refused_naming_the_file_and_key(
    tmp_path, capsys, monkeypatch, text, message
):
    # strong = "x" (or a list) ended in "dictionary update sequence element #0 has length 1; 2
    # is required", strong = 5 in a TypeError traceback, and strong = "" with --strong-model
    # passed as an empty [strong] table.
    _no_server(monkeypatch)
    path = tmp_path / "serve.toml"
    path.write_text(text)
    assert main(["serve", "--config", str(path)]) == 2
    assert f"routellm: error: {path}: {message}" in capsys.readouterr().err
    # Flags for the same side do not merge into it, nor hide which file the value came from.
    flags = ["--strong-base-url", "http://127.0.0.1:9/v1", "--strong-model", "m", "--port", "7000"]
    with pytest.raises(ServeConfigError) as info:
        _config(["--config", str(path), *flags])
    assert str(info.value) == f"{path}: {message}"
    # The same from a mapping (a JSON file, the settings sent to --workers processes).
    side = message.split(" ", 1)[0]
    if side in ("strong", "weak"):
        pair = {s: {"base_url": "http://a/v1", "model": s} for s in ("strong", "weak")}
        settings = {**pair, side: read_config_file(path)[side]}
        with pytest.raises(ServeConfigError) as info:
            ServeConfig.from_mapping(settings, "test")
        assert str(info.value) == f"test: {message}"


def test_a_pool_config_built_in_python_is_validated_too():
    from routellm_base.errors import InvalidPolicyError
    from routellm_base.serve import PoolConfig, PoolModelConfig

    good = PoolModelConfig("a", "http://127.0.0.1:9/v1", "a-m", 1.0, 2.0)
    assert ServeConfig(pool=PoolConfig(models=[good])).pool.models == (good,)  # a list, as a tuple
    for pool, message in [
        (lambda: PoolConfig(models=()), "pool.models must list at least one PoolModelConfig"),
        (lambda: PoolConfig(models=({"name": "a"},)), "pool.models[0] must be a PoolModelConfig"),
        (
            lambda: PoolConfig(models=(PoolModelConfig("a", "http://x/v1", "a-m", "1", 2.0),)),
            "pool.models[0]: input_price must be a number >= 0",
        ),
        (
            lambda: PoolConfig(models=(PoolModelConfig("a", "http://x/v1", 5, 1.0, 2.0),)),
            "pool.models[0]: model must be a non-empty string, got 5",
        ),
        (
            lambda: PoolConfig(models=(good, good)),
            "pool.models[1]: name 'a' is already pool.models[0]'s",
        ),
        (lambda: PoolConfig(models=(good,), router=5), "pool.router must name a pool router"),
    ]:
        with pytest.raises(ServeConfigError, match=re.escape(message)):
            pool()
    with pytest.raises(InvalidPolicyError, match="cost_weight must be"):
        PoolConfig(models=(good,), cost_weight="0.1")
