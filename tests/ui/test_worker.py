"""The worker on its own: signal order, newest request wins, errors as one line."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from app.engine.errors import GhostpenError
from app.engine.events import TokenEvent
from app.engine.fake import FakeEngine
from app.engine.sampling_params import SamplingParams
from app.ui.worker import EngineWorker


@pytest.fixture
def worker(qtbot: QtBot) -> Iterator[EngineWorker]:
    worker = EngineWorker()
    yield worker
    worker.shutdown()


def load(qtbot: QtBot, worker: EngineWorker, engine: object) -> None:
    with qtbot.waitSignal(worker.engine_loaded, timeout=5000):
        worker.load(lambda: engine)  # type: ignore[arg-type,return-value]


def test_a_generation_emits_started_tokens_finished_in_order(qtbot: QtBot,
                                                             worker: EngineWorker) -> None:
    load(qtbot, worker, FakeEngine())
    seen: list[tuple[str, int]] = []
    worker.generation_started.connect(lambda i: seen.append(("started", i)))
    worker.token_generated.connect(lambda i, event: seen.append((event.text, i)))
    worker.generation_finished.connect(lambda i, stats: seen.append(("finished", i)))
    signals = [worker.generation_started, *[worker.token_generated] * 3,
               worker.generation_finished]
    with qtbot.waitSignals(signals, order="strict", timeout=5000):
        request = worker.generate("Once", SamplingParams(max_new_tokens=3, seed=1))
    assert {i for _, i in seen} == {request}
    assert [kind for kind, _ in seen][0::4] == ["started", "finished"]
    assert all(len(text) == 1 for text, _ in seen[1:4])


def test_the_newest_generation_wins(qtbot: QtBot, worker: EngineWorker) -> None:
    load(qtbot, worker, FakeEngine(token_delay_s=0.01))
    finished: list[tuple[int, str]] = []
    worker.generation_finished.connect(lambda i, stats: finished.append((i, stats.stop_reason)))
    first = worker.generate("a", SamplingParams(max_new_tokens=500))
    second = worker.generate("b", SamplingParams(max_new_tokens=2))
    qtbot.waitUntil(lambda: any(i == second for i, _ in finished), timeout=5000)
    assert (second, "max_new_tokens") in finished
    assert all(reason == "cancelled" for i, reason in finished if i == first)


def test_stop_cancels_between_tokens(qtbot: QtBot, worker: EngineWorker) -> None:
    load(qtbot, worker, FakeEngine(token_delay_s=0.01))
    tokens: list[int] = []
    worker.token_generated.connect(lambda i, event: tokens.append(i))
    with qtbot.waitSignal(worker.generation_finished, timeout=5000) as blocker:
        worker.generate("a", SamplingParams(max_new_tokens=500))
        qtbot.waitUntil(lambda: len(tokens) >= 2)
        worker.stop()
    assert blocker.args[1].stop_reason == "cancelled"
    assert len(tokens) < 500


class BrokenEngine(FakeEngine):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def generate(self, prompt: str, params: SamplingParams,
                 cancel: threading.Event | None = None) -> Iterator[TokenEvent]:
        yield from super().generate(prompt, params.replace(max_new_tokens=1), cancel)
        raise self.error


def test_an_engine_error_becomes_its_one_line_message(qtbot: QtBot, worker: EngineWorker) -> None:
    load(qtbot, worker, BrokenEngine(GhostpenError("The model file is damaged; reinstall it.")))
    with qtbot.waitSignal(worker.generation_failed, timeout=5000) as blocker:
        worker.generate("a", SamplingParams())
    assert blocker.args[1] == "The model file is damaged; reinstall it."


def test_a_bug_in_the_engine_is_summarised_not_dumped(qtbot: QtBot, worker: EngineWorker,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    load(qtbot, worker, BrokenEngine(RuntimeError("index out of range\nmore detail")))
    with qtbot.waitSignal(worker.generation_failed, timeout=5000) as blocker:
        worker.generate("a", SamplingParams())
    message = blocker.args[1]
    assert "RuntimeError: index out of range" in message
    assert "\n" not in message and "Traceback" not in message
    assert "Traceback" in caplog.text  # the details go to the log


def test_a_failed_load_is_reported(qtbot: QtBot, worker: EngineWorker) -> None:
    def fail() -> FakeEngine:
        raise GhostpenError("model.onnx is missing from gpt2; convert the model again.")

    with qtbot.waitSignal(worker.engine_failed, timeout=5000) as blocker:
        worker.load(fail)
    assert blocker.args == ["model.onnx is missing from gpt2; convert the model again.", False]


class EngineThatFailsEverywhere(FakeEngine):
    """Every request but loading raises the same bug."""

    def suggest(self, *args: object, **kwargs: object) -> list[object]:
        raise RuntimeError("shape mismatch")

    def candidates(self, *args: object, **kwargs: object) -> list[object]:
        raise RuntimeError("shape mismatch")

    def warm(self, *args: object, **kwargs: object) -> int:
        raise RuntimeError("shape mismatch")


def test_each_request_reports_its_own_failure_in_one_line(
        qtbot: QtBot, worker: EngineWorker, caplog: pytest.LogCaptureFixture) -> None:
    load(qtbot, worker, EngineThatFailsEverywhere())
    params = SamplingParams()
    with qtbot.waitSignal(worker.suggestions_failed, timeout=5000) as suggestion:
        asked = worker.suggest("a", params, 2, 8, True)
    assert suggestion.args == [asked, "Suggestion failed: RuntimeError: shape mismatch "
                                      "(details in the log)"]
    with qtbot.waitSignal(worker.candidates_failed, timeout=5000) as preview:
        asked = worker.request_candidates("a", params)
    assert preview.args == [asked, "Preview failed: RuntimeError: shape mismatch "
                                   "(details in the log)"]
    # Reading ahead has no one waiting for it: its failure is only logged, and the worker goes on.
    worker.warm("a", 10)
    qtbot.waitUntil(lambda: "Reading the text ahead failed: RuntimeError" in caplog.text,
                    timeout=5000)
    with qtbot.waitSignal(worker.generation_finished, timeout=5000):
        worker.generate("a", SamplingParams(max_new_tokens=1))


def test_a_bug_while_loading_is_a_load_failure_not_a_missing_model(
        qtbot: QtBot, worker: EngineWorker, caplog: pytest.LogCaptureFixture) -> None:
    def fail() -> FakeEngine:
        raise OSError("libonnxruntime.so: cannot open shared object file")

    with qtbot.waitSignal(worker.engine_failed, timeout=5000) as blocker:
        worker.load(fail)
    assert blocker.args == ["Could not load the model: OSError: libonnxruntime.so: cannot open "
                            "shared object file (details in the log)", False]
    assert "Traceback" in caplog.text
