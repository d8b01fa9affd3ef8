"""`python -m app bench speculate`: what it reports about speculative decoding must be right."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from app.bench.common import STANDIN_DIR, STANDIN_TEXT
from app.bench.speculate import WAYS, first_difference, needed_acceptance, speculate_bench_main


def test_a_free_guess_needs_about_half_its_tokens_right_to_double_the_decode() -> None:
    free_passes = {s: 1.0 for s in range(1, 10)}  # a pass of S tokens costs one of a token
    rate, length = needed_acceptance(free_passes, draft_cost=0.0) or (None, None)
    assert rate is not None and length == 8  # the longest draft asks the least
    written = sum(rate**i for i in range(length + 1))  # tokens a pass writes on average
    assert abs(written - 2.0) < 1e-6
    assert 0.50 < rate < 0.51


def test_a_draft_costing_half_a_pass_can_never_double_the_decode() -> None:
    # k guesses cost k/2 passes and their check one more; at best they write k + 1 tokens.
    assert needed_acceptance({s: 1.0 for s in range(1, 10)}, draft_cost=0.5) is None


def test_where_two_continuations_part() -> None:
    assert first_difference([1, 2, 3], [1, 2, 3]) is None
    assert first_difference([1, 2, 3], [1, 5, 3]) == 1
    assert first_difference([1, 2], [1, 2, 3]) == 2  # one stopped early


@pytest.mark.skipif(not (STANDIN_DIR / STANDIN_TEXT).exists(),
                    reason=f"the bench's prompts come from {STANDIN_DIR / STANDIN_TEXT}")
def test_every_way_of_guessing_writes_what_fp32_writes_alone(tmp_path: Path) -> None:
    """On fp32 a pass of several tokens gives a single token's logits to ~1e-6, so the bench
    must report each speculative continuation identical to the plain one."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert speculate_bench_main(["--sizes", "tiny", "--draft", "tiny", "--precisions",
                                     "fp32", "--prompts", "2", "--rounds", "1", "--tokens",
                                     "16", "--cache-dir", str(tmp_path)]) == 0
    rows = [line for line in out.getvalue().splitlines() if line.startswith("| tiny fp32 |")]
    assert [row.split(" | ")[1] for row in rows] == list(WAYS)
    for row in rows:
        assert row.split(" | ")[5] == "2 of 2", row
    drafted = rows[list(WAYS).index("draft model, every guess checked")].split(" | ")[4]
    assert drafted != "–"  # its guesses were checked, not skipped
