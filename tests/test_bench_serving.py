"""bench.bench_serving's helpers: percentiles against numpy, and a load phase's numbers from known arrival times.

No server runs here (benchmarks never run inside pytest): ``summarise`` gets hand-made chunk
arrival times whose TTFT, inter-token gaps and tokens/s are known exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.bench_serving import format_phases, percentile, summarise


@pytest.mark.parametrize("values", [[3.0], [5.0, 1.0], [0.1, 0.4, 0.2, 0.9, 0.3], list(np.random.default_rng(0).random(37))])
@pytest.mark.parametrize("q", [0, 5, 50, 95, 100])
def test_percentile_is_numpys_linear_percentile(values, q):
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12)


@pytest.mark.parametrize("values, q, match", [([], 50, "non-empty"), ([1.0], 101, "q must be in")])
def test_percentile_refuses_bad_input(values, q, match):
    with pytest.raises(ValueError, match=match):
        percentile(values, q)


def test_summarise_reads_ttft_gaps_and_throughput_from_arrival_times():
    # request A starts at 0: chunks at 1.0, 1.1, 1.2, 1.5 (4 tokens); request B starts at 0.5: chunks at 2.0, 2.2 (2 tokens)
    results = [(0.0, [1.0, 1.1, 1.2, 1.5], 4), (0.5, [2.0, 2.2], 2)]
    s = summarise(results, wall=2.0)
    assert s["requests"] == 2 and s["tokens"] == 6 and s["tokens_per_s"] == pytest.approx(3.0)
    assert s["ttft_p50"] == pytest.approx(1.25)               # TTFTs 1.0 and 1.5
    assert s["ttft_p95"] == pytest.approx(1.0 + 0.95 * 0.5)
    gaps = [0.1, 0.1, 0.3, 0.2]                               # pooled over both requests
    assert s["itl_p50"] == pytest.approx(float(np.percentile(gaps, 50)))
    assert s["itl_p95"] == pytest.approx(float(np.percentile(gaps, 95)))
    assert s["tpot_mean"] == pytest.approx((0.5 / 3 + 0.2 / 1) / 2)
    assert s["latency_p50"] == pytest.approx((1.5 + 1.7) / 2)  # last chunk - start
    table = format_phases({"batching": [{"clients": 2, **s}]})
    assert table.splitlines()[1].split()[:3] == ["batching", "2", "3.0"]


def test_summarise_refuses_a_request_without_chunks():
    with pytest.raises(ValueError, match="at least one content chunk"):
        summarise([(0.0, [], 0)], wall=1.0)
