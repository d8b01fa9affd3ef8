"""A short run of the corrupted-model campaign (tests/fault_campaign/corrupt_models.py): each
way of damaging a model folder once for our own model and for both foreign layouts, every one
refused in one line or harmless, nothing outside the folders touched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fault_campaign.corrupt_models import BASES, KINDS, campaign_main


def test_corrupted_model_folders_are_refused_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    count = len(BASES) * len(KINDS)  # the first cases take each kind once per folder
    status = campaign_main(count, seed=0, folder=tmp_path)
    report = capsys.readouterr().out
    assert status == 0, report
    assert "corrupt_models: PASS, harmless " in report
    if shutil.which("strace") is not None:
        assert "watched by strace and an audit hook" in report
