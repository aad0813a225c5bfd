"""`routellm serve` with a pool of three priced models, each on a stand-in upstream process of its
own, beside the strong/weak pair: routed requests, a cost weight in the model name, the allowed
models and max_cost request fields, a forced model, fallback along the policy's order, headers and
body fields, the routing log's pool rows, /v1/models, and bad pool configs refused at start.

Deterministic without knowing the router's scores: a cost weight of 0 takes the best predicted
quality (the zero-shot router predicts the pricier model at least as good on every prompt), and
a cost weight of 1000 the cheapest; each check compares against the decision's own predictions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from serve_helpers import CLIENT_KEY, Process, ScriptedUpstream, start_router_server, wait_for_rows

from routellm_base.cli import main
from routellm_base.log import read_pool_candidates

PRICES = {"big": (5.0, 15.0), "mid": (0.5, 1.5), "small": (0.05, 0.15)}
"""USD per million input / output tokens."""
QUESTION = "Prove that there are infinitely many prime numbers, step by step."

POOL_TOML = """
router = "task_experts"
strong_share = 0.3
max_retries = 0
timeout = 5
api_key_env = "TEST_CLIENT_KEYS"
log = "{log}"
log_store_prompts = true

[strong]
base_url = "{pair}"
model = "strong-m"

[weak]
base_url = "{pair}"
model = "weak-m"

[pool]
cost_weight = 0.02
{models}
"""

MODEL_TOML = """
[[pool.models]]
name = "{name}"
base_url = "{url}"
model = "{name}-m"
input_price = {price[0]}
output_price = {price[1]}
"""


@pytest.fixture(scope="module")
def pool_upstreams(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, ScriptedUpstream]]:
    folder = tmp_path_factory.mktemp("pool-upstreams")
    upstreams = {name: ScriptedUpstream(folder / f"{name}.log") for name in PRICES}
    for upstream in upstreams.values():
        upstream.wait_ready()
    yield upstreams
    for upstream in upstreams.values():
        upstream.stop()


@pytest.fixture(scope="module")
def pool_server(
    scripted_upstream: ScriptedUpstream,
    pool_upstreams: dict[str, ScriptedUpstream],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Process, Path]]:
    folder = tmp_path_factory.mktemp("pool-server")
    log = folder / "routing.db"
    models = "".join(
        MODEL_TOML.format(name=name, url=pool_upstreams[name].url, price=price)
        for name, price in PRICES.items()
    )
    config = folder / "serve.toml"
    config.write_text(POOL_TOML.format(log=log, pair=scripted_upstream.url, models=models))
    server = start_router_server(
        ["--config", str(config)], folder / "server.log", env={"TEST_CLIENT_KEYS": CLIENT_KEY}
    )
    yield server, log
    server.stop()


@pytest.fixture
def pool(pool_server, pool_upstreams, scripted_upstream) -> tuple[Process, Path, dict]:
    for upstream in [*pool_upstreams.values(), scripted_upstream]:
        upstream.reset()
    server, log = pool_server
    return server, log, pool_upstreams


def _post(server: Process, model: str, **fields: Any) -> httpx.Response:
    return httpx.post(
        f"{server.base}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": QUESTION}], **fields},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        timeout=30,
    )


def _expected_cost(name: str, text: str = QUESTION) -> float:
    """USD per call: the prompt's characters / 4 as input tokens, 256 answer tokens."""
    price = PRICES[name]
    return (len(text) / 4 * price[0] + 256 * price[1]) / 1e6


def _best(pool: dict[str, Any], names: list[str], cost_weight: float) -> str:
    """The argmax of quality - lambda * cost per 1,000 calls over ``names`` (ties: cheaper)."""
    return max(
        names,
        key=lambda n: (
            pool["quality"][n] - cost_weight * 1000 * pool["expected_cost"][n],
            -pool["expected_cost"][n],
        ),
    )


def test_a_pool_request_is_routed_with_the_choice_in_headers_and_body(pool):
    server, log, upstreams = pool
    answer = _post(server, "router-zero_shot-1000")  # a cost weight that takes the cheapest
    assert answer.status_code == 200, answer.text
    body = answer.json()
    decision = body["routellm"]
    assert decision["side"] == decision["model"] == "small"
    assert body["choices"][0]["message"]["content"] == f"small-m: {QUESTION}"
    assert [r["body"]["model"] for r in upstreams["small"].requests()] == ["small-m"]
    assert upstreams["big"].requests() == [] and upstreams["mid"].requests() == []
    assert "routellm_models" not in upstreams["small"].requests()[0]["body"]
    # Every candidate's prediction and expected cost, the policy and its knob, the order.
    choice = decision["pool"]
    assert choice["policy"] == "cost_weight" and choice["knob"] == choice["cost_weight"] == 1000.0
    assert set(choice["quality"]) == set(PRICES) and choice["order"][0] == "small"
    for name in PRICES:
        assert choice["expected_cost"][name] == pytest.approx(_expected_cost(name))
    assert decision["expected_cost"] == pytest.approx(_expected_cost("small"))
    assert decision["win_rate"] is None and decision["threshold"] is None
    headers = answer.headers
    assert headers["x-routellm-model"] == headers["x-routellm-side"] == "small"
    assert headers["x-routellm-router"] == "zero_shot" and headers["x-routellm-forced"] == "false"
    assert headers["x-routellm-policy"] == "cost_weight"
    assert float(headers["x-routellm-cost-weight"]) == 1000.0
    assert float(headers["x-routellm-expected-cost"]) == pytest.approx(_expected_cost("small"))
    assert float(headers["x-routellm-quality"]) == choice["quality"]["small"]
    assert "x-routellm-threshold" not in headers and "x-routellm-win-rate" not in headers

    # The server's own policy (cost weight 0.02) chooses as its predictions say.
    default = _post(server, "router-zero_shot").json()["routellm"]
    assert default["pool"]["knob"] == 0.02
    assert default["model"] == _best(default["pool"], list(PRICES), 0.02)


def test_allowed_models_and_max_cost_narrow_the_choice(pool):
    server, _, upstreams = pool
    best = _post(server, "router-zero_shot-0").json()["routellm"]
    assert best["model"] == "big"  # lambda 0: the best predicted quality
    assert best["pool"]["quality"]["big"] > best["pool"]["quality"]["mid"]

    subset = _post(server, "router-zero_shot-0", routellm_models=["mid", "small"])
    assert subset.status_code == 200 and subset.headers["x-routellm-model"] == "mid"
    assert subset.json()["routellm"]["pool"]["order"] == ["mid", "small"]  # big not allowed

    cap = (_expected_cost("mid") + _expected_cost("big")) / 2  # between mid's and big's cost
    capped = _post(server, "router-zero_shot-0", routellm_max_cost=cap)
    assert capped.status_code == 200 and capped.headers["x-routellm-model"] == "mid"
    assert capped.json()["routellm"]["pool"]["max_cost"] == cap
    assert [r["body"]["model"] for r in upstreams["mid"].requests()] == ["mid-m", "mid-m"]

    too_low = _post(server, "router-zero_shot", routellm_max_cost=1e-9)
    assert too_low.status_code == 400
    error = too_low.json()["error"]
    assert error["param"] == "routellm_max_cost" and "'small'" in error["message"]


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        (
            {"routellm_models": ["big", "huge"]},
            "routellm_models",
            "names ['huge'], not in the pool",
        ),
        ({"routellm_models": []}, "routellm_models", "must be a non-empty list"),
        ({"routellm_models": "big"}, "routellm_models", "must be a non-empty list"),
        ({"routellm_max_cost": -1}, "routellm_max_cost", "must be a number >= 0"),
        ({"routellm_max_cost": "cheap"}, "routellm_max_cost", "must be a number >= 0"),
        ({"routellm_force": "strong"}, "routellm_force", "must be one of the pool's models"),
        (
            {"routellm_model": ["small"]},
            "routellm_model",
            "unknown field 'routellm_model': 'routellm_*' fields set the routing and are never "
            "sent upstream; model 'router-zero_shot' takes ['routellm_force', "
            "'routellm_max_cost', 'routellm_models']",
        ),
        (
            {"routellm_force": "big", "routellm_models": ["small"]},
            "routellm_force",
            "forced model 'big' is not one of the allowed models",
        ),
    ],
)
def test_bad_pool_request_fields_are_refused_by_name(pool, fields, param, message):
    server, _, upstreams = pool
    answer = _post(server, "router-zero_shot", **fields)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param and message in answer.json()["error"]["message"]
    assert all(u.requests() == [] for u in upstreams.values())


def test_model_names_of_the_pool_and_the_pair(pool):
    server, _, _ = pool
    bad = _post(server, "router-zero_shot-cheap")
    assert bad.status_code == 400 and "cost weight in model" in bad.json()["error"]["message"]
    # The pair's requests are as they were, and refuse the pool's fields.
    pair = _post(server, "router-task_experts-0.0")
    assert pair.status_code == 200 and pair.headers["x-routellm-side"] == "strong"
    assert pair.headers["x-routellm-threshold"] == "0.0" and "x-routellm-policy" not in pair.headers
    assert pair.json()["routellm"]["pool"] is None
    assert "expected_cost" not in pair.json()["routellm"]
    refused = _post(server, "router-task_experts", routellm_models=["big"])
    assert refused.status_code == 400 and "router-zero_shot" in refused.json()["error"]["message"]
    listed = httpx.get(
        f"{server.base}/v1/models", headers={"authorization": f"Bearer {CLIENT_KEY}"}
    ).json()
    assert [m["id"] for m in listed["data"]] == ["router-task_experts", "router-zero_shot"]
    health = httpx.get(f"{server.base}/health").json()
    assert health["pool"]["models"] == ["big", "mid", "small"]


def test_a_forced_model_and_fallback_along_the_order(pool):
    server, log, upstreams = pool
    forced = _post(server, "router-zero_shot", routellm_force="mid")
    assert forced.status_code == 200 and forced.headers["x-routellm-model"] == "mid"
    assert forced.headers["x-routellm-forced"] == "true"
    assert forced.headers["x-routellm-policy"] == "forced"
    # no router ran, but the forced model's expected cost is known (max_cost checks it)
    assert float(forced.headers["x-routellm-expected-cost"]) == pytest.approx(_expected_cost("mid"))
    assert forced.json()["routellm"]["expected_cost"] == pytest.approx(_expected_cost("mid"))
    assert forced.json()["routellm"]["pool"]["quality"] == {}

    # big fails (500, no retries): the call goes to the next in the policy's order.
    upstreams["big"].script({"big-m": [{"status": 500}]})
    fell = _post(server, "router-zero_shot-0")
    assert fell.status_code == 200, fell.text
    decision = fell.json()["routellm"]
    assert decision["fallback_from"] == "big" and decision["model"] == decision["pool"]["order"][1]
    assert fell.headers["x-routellm-fallback-from"] == "big"
    assert fell.json()["choices"][0]["message"]["content"].startswith(f"{decision['model']}-m: ")

    # Every model fails: the client gets the upstreams' status and every failure.
    for name, upstream in upstreams.items():
        upstream.script({f"{name}-m": [{"status": 503}]})
    failed = _post(server, "router-zero_shot-0")
    assert failed.status_code == 503
    assert failed.json()["error"]["message"].count("upstream answered 503") == 3

    # An upstream that refuses the request itself (400) is answered as it is, no fallback.
    upstreams["big"].script({"big-m": [{"status": 400}]})
    upstreams["mid"].reset()
    refused = _post(server, "router-zero_shot-0")
    assert (
        refused.status_code == 400 and "big upstream refused" in refused.json()["error"]["message"]
    )
    assert upstreams["mid"].requests() == []

    call_ids = [forced.json()["routellm"]["call_id"], decision["call_id"]]
    rows = wait_for_rows(log, call_ids)
    assert [len(rows[i]) for i in call_ids] == [1, 1]  # answered calls only
    forced_row, fell_row = (rows[i][0] for i in call_ids)
    assert forced_row["side"] == "mid" and forced_row["pool_policy"] == "forced"
    assert fell_row["fallback_from"] == "big" and fell_row["side"] == decision["model"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_refusal_after_a_fallback_names_every_models_failure(pool, stream):
    # big (the best predicted quality at cost weight 0) fails with its own 500; the next in
    # the order refuses the request: no further fallback, and the client gets a 502 naming both.
    server, _, upstreams = pool
    upstreams["big"].script({"big-m": [{"status": 500}]})
    for name in ("mid", "small"):
        upstreams[name].script({f"{name}-m": [{"status": 400}]})
    failed = _post(server, "router-zero_shot-0", stream=stream)
    assert failed.status_code == 502, failed.text
    error = failed.json()["error"]
    second = failed.headers["x-routellm-model"]
    assert failed.headers["x-routellm-fallback-from"] == "big" and second != "big"
    assert error["type"] == "upstream_error"
    assert error["message"] == (
        "every upstream tried failed: big upstream answered 500: scripted 500; "
        f"{second} upstream answered 400: scripted 400"
    )
    third = ({"mid", "small"} - {second}).pop()
    assert upstreams[third].requests() == []  # a refusal ends the fallback


def test_a_pool_stream_carries_the_choice_in_its_first_chunk(pool):
    server, _, _ = pool
    client = openai.OpenAI(base_url=f"{server.base}/v1", api_key=CLIENT_KEY, max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="router-zero_shot-1000",
            messages=[{"role": "user", "content": QUESTION}],
            stream=True,
            extra_body={"routellm_models": ["big", "mid"]},
        )
    )
    decision = chunks[0].model_extra["routellm"]
    assert decision["model"] == "mid" and decision["expected_cost"] == pytest.approx(
        _expected_cost("mid")
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"mid-m: {QUESTION}"


def test_pool_calls_are_logged_with_each_candidates_prediction(pool):
    server, log, _ = pool
    answers = [
        _post(server, "router-zero_shot-1000").json(),
        _post(server, "router-zero_shot-0", routellm_models=["mid", "small"]).json(),
        _post(server, "router-task_experts-0.0").json(),
    ]
    call_ids = [a["routellm"]["call_id"] for a in answers]
    rows = wait_for_rows(log, call_ids)
    cheap, subset, pair = (rows[i][0] for i in call_ids)
    assert (cheap["side"], cheap["model"], cheap["pool_policy"]) == (
        "small",
        "small",
        "cost_weight",
    )
    assert cheap["pool_knob"] == cheap["pool_cost_weight"] == 1000.0
    assert cheap["threshold"] is None and cheap["win_rate"] is None
    assert cheap["expected_cost_usd"] == pytest.approx(_expected_cost("small"))
    # The scripted upstream reports 10 prompt and 5 completion tokens: priced at the pool's price.
    assert cheap["cost_usd"] == pytest.approx((10 * 0.05 + 5 * 0.15) / 1e6)
    assert cheap["prompt"] is not None  # log_store_prompts = true in the config
    assert subset["side"] == "mid"
    # The pair's row is as before schema 5.
    assert pair["side"] == "strong" and pair["threshold"] == 0.0 and pair["pool_policy"] is None
    candidates = [r for r in read_pool_candidates(log) if r["call_id"] in call_ids]
    by_call = {i: {r["model"]: r for r in candidates if r["call_id"] == i} for i in call_ids}
    assert by_call[call_ids[2]] == {}  # no candidates for a two-model call
    quality = answers[0]["routellm"]["pool"]["quality"]
    assert {m: r["quality"] for m, r in by_call[call_ids[0]].items()} == quality
    assert by_call[call_ids[0]]["small"]["rank"] == 0
    assert {m: r["rank"] for m, r in by_call[call_ids[1]].items()} == {
        "mid": 0,
        "small": 1,
        "big": None,  # not allowed: not in the fallback order
    }


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            'name = "big"\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "b"\ninput_price = 1',
            "pool.models[0] ('big') has no output_price",
        ),  # fmt: skip
        (
            'name = "big"\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "b"',
            "pool.models[0] ('big') has no input_price and no output_price",
        ),  # fmt: skip
        (
            'name = "mid"\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\ninput_price = 1\n'
            'output_price = 2\ncolour = "red"',
            "unknown key(s) in",
        ),  # fmt: skip
        (
            'name = "mid"\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\ninput_price = -1\n'
            "output_price = 2",
            "pool.models[0] ('mid'): input_price must be a number >= 0",
        ),  # fmt: skip
        (
            'name = "small"\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "s"\ninput_price = 1\n'
            'output_price = 1\n[[pool.models]]\nname = "small"\nbase_url = "http://127.0.0.1:9/v1"\n'
            'model = "t"\ninput_price = 1\noutput_price = 1',
            "pool.models[1] ('small'): name 'small' is already pool.models[0]'s",
        ),  # fmt: skip
    ],
)
def test_a_bad_pool_config_stops_start_up_naming_the_file_and_field(
    tmp_path: Path, capsys, model, message
):
    path = tmp_path / "serve.toml"
    path.write_text(f"[pool]\ncost_weight = 0.1\n[[pool.models]]\n{model}\n")
    assert main(["serve", "--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert str(path) in error and message in error


def test_a_bad_pool_policy_and_an_unknown_pool_key_are_named(tmp_path: Path, capsys):
    models = '[[pool.models]]\nname = "a"\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "a"\n'
    models += "input_price = 1\noutput_price = 1\n"
    for head, message in [
        ("[pool]\ncost_weight = 0.1\nbudget = 3\n", "pool policy: give at most one of"),
        ("[pool]\ncost_weigth = 0.1\n", "unknown key(s) in"),
        ("[pool]\nmax_cost = -2\n", "pool policy: max_cost must be"),
    ]:
        path = tmp_path / "serve.toml"
        path.write_text(head + models)
        assert main(["serve", "--config", str(path)]) == 2
        error = capsys.readouterr().err
        assert str(path) in error and message in error, error
    path.write_text("[pool]\nmodels = []\n")
    assert main(["serve", "--config", str(path)]) == 2
    assert "pool.models must list at least one model" in capsys.readouterr().err


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(
    ("router", "message", "python"),
    [
        (
            "pool_knn",
            ": pool.models: pool router 'pool_knn' was trained on",
            "(router='zero_shot')",
        ),
        ("mf", ": pool.router: 'mf' is a two-model router", "ZeroShotPoolRouter("),
    ],
)
def test_a_pool_router_that_cannot_route_the_pool_names_the_file_and_its_keys(
    tmp_path: Path, capsys, monkeypatch, router, message, python, workers
):
    import uvicorn

    def no_server(*args, **kwargs):
        raise AssertionError("uvicorn started: the router was not checked before the workers")

    monkeypatch.setattr(uvicorn, "run", no_server)
    path = tmp_path / "pk.toml"
    path.write_text(
        f'[pool]\nrouter = "{router}"\ncost_weight = 0.1\n[[pool.models]]\nname = "a"\n'
        'base_url = "http://127.0.0.1:9/v1"\nmodel = "a"\ninput_price = 1\noutput_price = 1\n'
    )
    assert main(["serve", "--config", str(path), "--workers", str(workers)]) == 2
    error = capsys.readouterr().err
    assert f"routellm: error: {path}{message}" in error, error
    # the fix is worded as [pool] settings, not a Python call
    assert 'router = "zero_shot" in [pool]' in error and "routellm train pool" in error
    assert python not in error


def test_a_request_can_lower_the_pools_max_cost_never_raise_it() -> None:
    """A trial: ``"routellm_max_cost": 1`` lifted the operator's ``[pool] max_cost = 0.001``,
    and the call went to a model the config had ruled out."""
    from routellm_base.serve.app import RoutingServer
    from routellm_base.serve.config import ServeConfig

    models = [
        {"name": n, "base_url": "http://127.0.0.1:9/v1", "model": n, "input_price": p[0],
         "output_price": p[1]}
        for n, p in PRICES.items()
    ]  # fmt: skip
    config = ServeConfig.from_mapping(
        {"pool": {"cost_weight": 0.02, "max_cost": 0.001, "models": models}}
    )
    server = RoutingServer(config)
    assert server._pool_route({"routellm_max_cost": 1.0}, None)["max_cost"] == 0.001
    assert server._pool_route({"routellm_max_cost": 0.0001}, None)["max_cost"] == 0.0001
    assert "max_cost" not in server._pool_route({}, None)  # the pool's own applies
