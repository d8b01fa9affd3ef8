"""Which installed model the window lets guess for the one it loads (speculative decoding)."""

from __future__ import annotations

from pathlib import Path

from app.model_store import InstalledModel
from app.ui.engines import choose_draft


def installed(name: str, n_params: int, precision: str = "int8", foreign: bool = False,
              problem: str = "") -> InstalledModel:
    return InstalledModel(name=name, path=Path("/models") / name, n_params=n_params,
                          precision=precision, size_bytes=n_params, foreign=foreign,
                          source="test", problem=problem)


XL = installed("gpt2-xl-int8", 1_557_611_200)
LARGE = installed("gpt2-large-int8", 774_030_080)
MEDIUM = installed("gpt2-medium-int8", 354_823_168)
SMALL = installed("gpt2-int8", 124_439_808)
SMALL_INT4 = installed("gpt2-int4", 124_439_808, "int4")


def test_a_big_model_drafts_with_the_largest_small_enough_model_in_the_fewest_bits() -> None:
    assert choose_draft(XL, [XL, LARGE, MEDIUM, SMALL, SMALL_INT4]) == SMALL_INT4  # medium: 23%
    assert choose_draft(LARGE, [XL, LARGE, MEDIUM, SMALL, SMALL_INT4]) == SMALL_INT4


def test_no_draft_where_it_would_not_pay_or_could_not_run() -> None:
    assert choose_draft(MEDIUM, [MEDIUM, SMALL]) is None  # its pass costs under 3 of gpt2's
    assert choose_draft(SMALL, [SMALL, SMALL_INT4]) is None
    assert choose_draft(LARGE, [LARGE]) is None
    broken = installed("gpt2-broken", 124_439_808, problem="model.onnx.data is missing")
    foreign = installed("gpt2-onnx", 124_439_808, "", foreign=True)
    assert choose_draft(LARGE, [LARGE, broken, foreign]) is None
    assert choose_draft(installed("xl-export", 1_557_611_200, "", foreign=True), [SMALL]) is None
