"""`python -m app serve`: the real server on a loopback port, the real tiny model and OpenAI's
official client; what an editor plugin talking to it relies on."""

from __future__ import annotations

import json
import math
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from app.engine.engine import Engine, load_engine
from app.engine.events import TokenEvent
from app.engine.sampling_params import SamplingParams
from app.serve.api import LOOPBACK_NAMES, ServedModel, build_app
from app.serve.completion_request import SERVE_DEFAULTS
from app.serve.engine_queue import EngineQueue
from app.serve.server import BackgroundServer, bind_socket

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "The lighthouse keeper"
LONG = 100_000  # max_tokens of a request that ends only when its client leaves


@dataclass
class Served:
    url: str
    model_id: str

    def client(self, api_key: str = "not-needed") -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0,
                             timeout=60)

    def health(self) -> dict[str, Any]:
        return request_json(self.url + "/health")[1]

    def wait_for(self, condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + 20
        while True:
            health = self.health()
            if condition(health) or time.monotonic() > deadline:
                return health
            time.sleep(0.02)


@contextmanager
def serving(model: Path, api_key: str | None = None) -> Iterator[Served]:
    engine = load_engine(model, "cpu", threads=1)
    queue = EngineQueue(lambda call: call(engine))
    queue.start()
    sock = bind_socket("127.0.0.1", 0)
    app = build_app(queue, ServedModel.of(model, engine), api_key, LOOPBACK_NAMES)
    server = BackgroundServer(app, sock)
    server.start()
    try:
        yield Served(server.url, model.name)
    finally:
        server.stop()
        queue.close()
        engine.close()
        sock.close()


@pytest.fixture(scope="module")
def served(tiny_model: Path) -> Iterator[Served]:
    with serving(tiny_model) as running:
        yield running


@pytest.fixture(scope="module")
def engine(tiny_model: Path) -> Iterator[Engine]:
    """A second engine on the same model: what the server's answers are checked against."""
    reference = load_engine(tiny_model, "cpu", threads=1)
    yield reference
    reference.close()


def engine_events(engine: Engine, params: SamplingParams, prompt: str = PROMPT,
                  n_alternatives: int = 0) -> list[TokenEvent]:
    return list(engine.generate(prompt, params, n_alternatives=n_alternatives))


def request_json(url: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of a GET, or of a POST when `body` is given; 4xx included."""
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def open_completion(url: str, body: dict[str, Any],
                    content_length: int | None = None) -> socket.socket:
    """A completions request on a raw connection, left open: the test decides when the
    client leaves (closing the socket). `content_length`: what the header claims instead."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=20)
    payload = json.dumps(body).encode()
    length = len(payload) if content_length is None else content_length
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (length, payload))
    return sock


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    received = b""
    while marker not in received:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection before {marker!r}: {received!r}"
        received += chunk
    return received


# --- what the server writes --------------------------------------------------------------


def test_greedy_text_is_what_the_cli_writes(served: Served, tiny_model: Path,
                                            engine: Engine) -> None:
    completion = served.client().completions.create(
        model=served.model_id, prompt=PROMPT, max_tokens=12, temperature=0)
    cli = subprocess.run([sys.executable, "-m", "app", "generate", "--model", str(tiny_model),
                          "--prompt", PROMPT, "--greedy", "--max-new-tokens", "12"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert completion.choices[0].text == cli.stdout.removesuffix("\n")
    assert completion.choices[0].finish_reason == "length"
    assert completion.model == served.model_id and completion.object == "text_completion"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == engine.count_tokens(PROMPT)
    assert completion.usage.completion_tokens == 12


def test_logprobs_are_the_engines(served: Served, engine: Engine) -> None:
    completion = served.client().completions.create(
        model=served.model_id, prompt=PROMPT, max_tokens=8, temperature=0.9, seed=3,
        logprobs=5)
    events = engine_events(engine, SERVE_DEFAULTS.replace(temperature=0.9, seed=3,
                                                          max_new_tokens=8), n_alternatives=5)
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.top_logprobs is not None
    assert completion.choices[0].text == "".join(e.text for e in events)
    assert logprobs.tokens == [e.text for e in events]
    # Equal up to float32 round-off: the server's engine may hold part of the prompt in its
    # KV cache already and run the rest in other chunks.
    assert logprobs.token_logprobs == pytest.approx([math.log(e.p) for e in events], abs=1e-4)
    for top, event in zip(logprobs.top_logprobs, events, strict=True):
        expected = {a.text: math.log(a.p) for a in event.alternatives}
        expected.setdefault(event.text, math.log(event.p))  # the chosen one, if not top 5
        assert top == pytest.approx(expected, abs=1e-4)
    starts = [len(PROMPT) + sum(len(e.text) for e in events[:i]) for i in range(len(events))]
    assert logprobs.text_offset == starts  # counted from the prompt's start, as OpenAI does


def test_twenty_alternatives_and_no_more(served: Served) -> None:
    client = served.client()
    completion = client.completions.create(model=served.model_id, prompt=PROMPT, max_tokens=2,
                                           temperature=0, logprobs=20)
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.top_logprobs is not None
    assert all(len(top) == 20 for top in logprobs.top_logprobs)
    with pytest.raises(openai.BadRequestError, match="logprobs = 21 must be a whole number"):
        client.completions.create(model=served.model_id, prompt=PROMPT, logprobs=21)


def test_streaming_gives_the_same_tokens_in_order(served: Served) -> None:
    client = served.client()
    asked: dict[str, Any] = {"model": served.model_id, "prompt": PROMPT, "max_tokens": 10,
                             "seed": 5, "logprobs": 1}
    whole = client.completions.create(**asked)
    chunks = list(client.completions.create(**asked, stream=True,
                                            stream_options={"include_usage": True}))
    token_chunks = [c for c in chunks if c.choices and c.choices[0].finish_reason is None]
    assert whole.choices[0].logprobs is not None
    assert [c.choices[0].text for c in token_chunks] == whole.choices[0].logprobs.tokens
    assert all(c.id == chunks[0].id for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage


def test_stop_strings_end_the_text_before_them(served: Served) -> None:
    client = served.client()
    greedy = client.completions.create(model=served.model_id, prompt=PROMPT, max_tokens=12,
                                       temperature=0).choices[0].text
    stop = greedy[len(greedy) // 2 : len(greedy) // 2 + 3]
    stopped = client.completions.create(model=served.model_id, prompt=PROMPT, max_tokens=12,
                                        temperature=0, stop=["never written", stop])
    assert stopped.choices[0].text == greedy[: greedy.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"


def test_seeds_replay_and_n_choices_are_seeds_in_a_row(served: Served) -> None:
    client = served.client()
    three = client.completions.create(model=served.model_id, prompt=PROMPT, max_tokens=8,
                                      n=3, seed=11)
    again = client.completions.create(model=served.model_id, prompt=PROMPT, max_tokens=8,
                                      n=3, seed=11)
    texts = [c.text for c in three.choices]
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert texts == [c.text for c in again.choices]
    assert len(set(texts)) == 3
    third_alone = client.completions.create(model=served.model_id, prompt=PROMPT,
                                            max_tokens=8, seed=13)
    assert third_alone.choices[0].text == texts[2]


def test_a_list_of_prompts_gives_n_choices_each(served: Served, engine: Engine) -> None:
    prompts = ["Once upon a time", "The ship"]
    completion = served.client().completions.create(model=served.model_id, prompt=prompts,
                                                    max_tokens=5, n=2, temperature=0)
    assert [c.index for c in completion.choices] == [0, 1, 2, 3]
    for index, prompt in enumerate(prompts):
        greedy = "".join(e.text for e in engine_events(
            engine, SERVE_DEFAULTS.replace(temperature=0.0, max_new_tokens=5), prompt))
        assert [c.text for c in completion.choices[2 * index : 2 * index + 2]] == [greedy] * 2


def test_ghostpen_samplers_go_by_their_own_names(served: Served, engine: Engine) -> None:
    client = served.client()
    extra = {"top_k": 5, "min_p": 0.02, "repetition_penalty": 1.3, "no_repeat_ngram_size": 2,
             "dry_multiplier": 0.8, "xtc_probability": 0.5, "xtc_threshold": 0.05}
    completion = client.completions.create(model=served.model_id, prompt=PROMPT, max_tokens=10,
                                           seed=21, temperature=1.1, presence_penalty=0.5,
                                           extra_body=extra)
    params = SERVE_DEFAULTS.replace(seed=21, temperature=1.1, presence_penalty=0.5,
                                    max_new_tokens=10, **extra)
    assert completion.choices[0].text == "".join(e.text for e in engine_events(engine, params))
    greedy = engine_events(engine, SERVE_DEFAULTS.replace(temperature=0.0, max_new_tokens=1))
    biased = client.completions.create(model=served.model_id, prompt=PROMPT, max_tokens=1,
                                       temperature=0, logprobs=0,
                                       logit_bias={str(greedy[0].token_id): -100})
    assert biased.choices[0].text != greedy[0].text


def test_echo_puts_the_prompt_first(served: Served) -> None:
    client = served.client()
    echoed = client.completions.create(model=served.model_id, prompt=PROMPT, max_tokens=3,
                                       temperature=0, echo=True, logprobs=1)
    plain = client.completions.create(model=served.model_id, prompt=PROMPT, max_tokens=3,
                                      temperature=0)
    assert echoed.choices[0].text == PROMPT + plain.choices[0].text
    logprobs = echoed.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens is not None
    assert echoed.usage is not None and logprobs.token_logprobs is not None
    prompt_count = echoed.usage.prompt_tokens
    assert len(logprobs.tokens) == prompt_count + 3
    assert "".join(logprobs.tokens[:prompt_count]) == PROMPT
    assert "".join(logprobs.tokens) == echoed.choices[0].text
    assert logprobs.token_logprobs[:prompt_count] == [None] * prompt_count  # not scored
    assert all(lp is not None for lp in logprobs.token_logprobs[prompt_count:])
    assert logprobs.text_offset is not None and logprobs.text_offset[0] == 0
    scored_only = client.completions.create(model=served.model_id, prompt=PROMPT, max_tokens=0,
                                            echo=True)
    assert scored_only.choices[0].text == PROMPT


# --- one engine, many clients --------------------------------------------------------------


def test_a_client_that_leaves_stops_its_generation(served: Served) -> None:
    before = served.wait_for(lambda h: not h["running"])
    stream = open_completion(served.url, {"prompt": PROMPT, "max_tokens": LONG, "stream": True})
    read_until(stream, b"data: ")
    stream.close()
    after = served.wait_for(lambda h: not h["running"] and h["queue_depth"] == 0)
    assert after["requests_cancelled"] == before["requests_cancelled"] + 1
    assert after["tokens_generated"] - before["tokens_generated"] < 2000

    plain = open_completion(served.url, {"prompt": PROMPT, "max_tokens": LONG})
    served.wait_for(lambda h: h["running"])
    plain.close()
    after_plain = served.wait_for(lambda h: not h["running"])
    assert after_plain["requests_cancelled"] == after["requests_cancelled"] + 1


def test_a_waiting_request_whose_client_left_is_dropped(served: Served) -> None:
    before = served.wait_for(lambda h: not h["running"])
    first = open_completion(served.url, {"prompt": PROMPT, "max_tokens": LONG, "stream": True})
    read_until(first, b"data: ")
    second = open_completion(served.url, {"prompt": PROMPT, "max_tokens": LONG})
    assert served.wait_for(lambda h: h["waiting"] == 1)["queue_depth"] == 2
    second.close()
    served.wait_for(lambda h: h["waiting"] == 0)
    first.close()
    after = served.wait_for(lambda h: not h["running"] and h["requests_dropped"] > 0)
    assert after["requests_dropped"] == before["requests_dropped"] + 1
    assert after["requests_cancelled"] == before["requests_cancelled"] + 1
    completion = served.client().completions.create(model=served.model_id, prompt=PROMPT,
                                                    max_tokens=2)
    assert completion.choices[0].finish_reason == "length"  # and the server goes on


def test_requests_from_many_clients_all_finish(served: Served) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = served.client()

    def ask(seed: int) -> str:
        return client.completions.create(model=served.model_id, prompt=PROMPT, max_tokens=6,
                                         seed=seed).choices[0].text

    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(ask, range(6)))
    assert together == [ask(seed) for seed in range(6)]


def test_models_and_health(served: Served, tiny_model: Path) -> None:
    models = served.client().models.list()
    assert [(m.id, m.owned_by) for m in models.data] == [(tiny_model.name, "ghostpen")]
    assert models.data[0].created == int(tiny_model.stat().st_mtime)
    health = served.health()
    assert health["status"] == "ok" and health["model"] == tiny_model.name
    assert health["queue_depth"] >= 0


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "message"), [
    (b'{"prompt": "Once', "not valid JSON"),
    (b'["Once"]', "send a JSON object"),
    (b'{"prompt": "Once", "temprature": 0.5}', "Unrecognized request argument supplied: "
                                               "temprature"),
    (b'{"prompt": "Once", "temperature": -1}', "temperature = -1 must be between 0 and 2."),
    (b'{"prompt": "Once", "temperature": "hot"}', 'temperature = "hot" must be a number.'),
    (b'{"prompt": "Once", "logprobs": 21}', "logprobs = 21 must be a whole number from 0 to 20."),
    (b'{"prompt": "Once", "suffix": " end."}', "suffix is not supported"),
    (b'{"prompt": "Once", "top_k": -1}', "top_k = -1 must be 0 (off) or more."),
    (b'{"prompt": "Once", "stop": ["a", "b", "c", "d", "e"]}', "at most 4 strings"),
    (b'{"prompt": [464, 1110]}', "A prompt of token ids is not supported"),
    (b'{"prompt": "Once", "n": 2, "best_of": 1}', "best_of = 1 must be at least n = 2."),
    (b'{"prompt": "Once", "logit_bias": {"99999": 5}}', "below the vocabulary's 50257"),
])
def test_a_bad_request_is_refused_in_one_line(served: Served, body: bytes,
                                              message: str) -> None:
    status, answer = request_json(served.url + "/v1/completions", body)
    assert status == 400
    assert message in answer["error"]["message"]
    assert "\n" not in answer["error"]["message"]
    assert answer["error"]["type"] == "invalid_request_error"


def test_other_refusals_in_openais_shape(served: Served) -> None:
    client = served.client()
    with pytest.raises(openai.NotFoundError, match="this server serves") as refused:
        client.completions.create(model="gpt-3.5-turbo-instruct", prompt=PROMPT)
    assert refused.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError, match="GPT-2 is not a chat model"):
        client.chat.completions.create(model=served.model_id,
                                       messages=[{"role": "user", "content": "Hi"}])
    # Refused from its Content-Length, before the server reads (and holds) the body.
    with open_completion(served.url, {"prompt": "x"}, content_length=2 << 20) as large:
        answer_text = read_until(large, b"}}").decode()
    assert answer_text.startswith("HTTP/1.1 413 ")
    assert "larger than 1024 KiB" in answer_text
    status, answer = request_json(served.url + "/health", headers={"Host": "attacker.example"})
    assert status == 403 and answer["error"]["code"] == "host_not_allowed"


def test_with_a_key_every_request_needs_it(tiny_model: Path) -> None:
    with serving(tiny_model, api_key="s3cret") as keyed:
        with pytest.raises(openai.AuthenticationError, match="wrong API key"):
            keyed.client("guess").completions.create(model=keyed.model_id, prompt=PROMPT)
        status, answer = request_json(keyed.url + "/health")
        assert status == 401 and answer["error"]["code"] == "invalid_api_key"
        completion = keyed.client("s3cret").completions.create(model=keyed.model_id,
                                                               prompt=PROMPT, max_tokens=2)
        assert completion.choices[0].finish_reason == "length"


# --- the command ---------------------------------------------------------------------------


def serve_command(*args: str, prelude: str = "") -> subprocess.Popen[str]:
    code = f"import sys; {prelude}from app.__main__ import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, "serve", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def one_line_refusal(process: subprocess.Popen[str]) -> str:
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and stdout == ""
    assert stderr.startswith("error: ") and stderr.count("\n") == 1
    return stderr


def test_the_command_refuses_what_it_cannot_do_safely(tiny_model: Path) -> None:
    public = serve_command("--model", str(tiny_model), "--host", "0.0.0.0")
    assert "needs --api-key" in one_line_refusal(public)
    no_extra = serve_command("--model", str(tiny_model),
                             prelude="sys.modules['uvicorn'] = None; ")
    assert 'pip install -e ".[serve]"' in one_line_refusal(no_extra)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        in_use = serve_command("--model", str(tiny_model), "--port", port)
        assert f"Cannot listen on 127.0.0.1:{port}" in one_line_refusal(in_use)


def test_the_command_serves_until_interrupted(tiny_model: Path) -> None:
    process = serve_command("--model", str(tiny_model), "--port", "0", "--threads", "1")
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith(f"Ghostpen serves {tiny_model.name} (fp32"), line
        url = line.split(" at ")[1].split("/v1;")[0]
        models = openai.OpenAI(base_url=url + "/v1", api_key="-", max_retries=0).models.list()
        assert [m.id for m in models.data] == [tiny_model.name]
        if sys.platform != "win32":
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.communicate()
