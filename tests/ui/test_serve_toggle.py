"""Models ▸ Serve: the window serves its own engine to other programs while it is switched on."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable

import openai
import pytest
from pytestqt.qtbot import QtBot

from app.ui.main_window import MainWindow


def test_serving_is_off_until_switched_on(make_window: Callable[..., MainWindow],
                                          qtbot: QtBot) -> None:
    window = make_window()
    toggle = window.serve_toggle
    assert toggle.action.isCheckable() and not toggle.action.isChecked()
    assert toggle.action.text() == "&Serve on 127.0.0.1:8089"
    assert toggle.url is None and toggle.label.isHidden()

    toggle.port = 0  # any free port: 8089 may be taken on the machine running the tests
    toggle.action.trigger()
    assert toggle.url is not None
    assert toggle.label.isVisible() and toggle.label.text() == f"Serving on {toggle.url}/v1"
    client = openai.OpenAI(base_url=toggle.url + "/v1", api_key="-", max_retries=0, timeout=30)
    assert [m.id for m in client.models.list().data] == ["fake"]
    completion = client.completions.create(model="fake", prompt="Once", max_tokens=4,
                                           temperature=0)
    assert completion.choices[0].text == "aaaa"  # the fake engine's greedy token

    url = toggle.url
    toggle.action.trigger()
    assert toggle.url is None and toggle.label.isHidden()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/health", timeout=5)


def test_a_taken_port_is_one_line_in_the_status_bar(make_window: Callable[..., MainWindow],
                                                    qtbot: QtBot) -> None:
    import socket

    window = make_window()
    toggle = window.serve_toggle
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        toggle.port = taken.getsockname()[1]
        toggle.action.trigger()
    assert not toggle.action.isChecked() and toggle.url is None
    assert window.statusBar().currentMessage().startswith("Cannot serve: Cannot listen on ")
