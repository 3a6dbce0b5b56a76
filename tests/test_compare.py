from __future__ import annotations

import numpy as np
import pytest

from deploy.harness.compare import Tolerance, compare_arrays, compare_outputs, with_overrides


def test_identical_outputs_pass_with_perfect_scores() -> None:
    x = np.random.default_rng(0).normal(size=(4, 10)).astype(np.float32)
    result = compare_arrays("logits", x, x.copy(), Tolerance())
    assert result and result.max_abs == 0 and result.cosine_min == pytest.approx(1.0)
    assert result.top1_agreement == 1.0 and result.top5_agreement == 1.0


def test_element_fails_only_beyond_both_atol_and_rtol() -> None:
    ref = np.array([[100.0, 0.001]], dtype=np.float32)
    # 0.05 off on 100 is within rtol 1e-3 (0.1) though beyond atol; 0.0005 off on 0.001 is within atol.
    near = np.array([[100.05, 0.0015]], dtype=np.float32)
    assert compare_arrays("y", ref, near, Tolerance(atol=1e-3, rtol=1e-3, min_cosine=None))
    far = np.array([[100.5, 0.001]], dtype=np.float32)
    result = compare_arrays("y", ref, far, Tolerance(atol=1e-3, rtol=1e-3, min_cosine=None))
    assert not result and result.mismatched_fraction == 0.5
    assert "beyond atol" in result.failures[0]


def test_top_k_agreement_counts_argmax_and_top5_overlap() -> None:
    ref = np.tile(np.arange(10, dtype=np.float32), (2, 1))  # top-1 = 9, top-5 = {5..9}
    cand = ref.copy()
    cand[1, 0] = 20.0  # sample 1: top-1 becomes 0, top-5 = {0, 6, 7, 8, 9}
    result = compare_arrays("logits", ref, cand, Tolerance(atol=None, rtol=None, min_cosine=None, min_top1=1.0))
    assert result.top1_agreement == 0.5
    assert result.top5_agreement == pytest.approx((1.0 + 0.8) / 2)
    assert not result and "top-1 agreement" in result.failures[0]


def test_cosine_is_per_sample_and_catches_a_sign_flip() -> None:
    ref = np.ones((2, 8), dtype=np.float32)
    cand = ref.copy()
    cand[1] *= -1
    result = compare_arrays("y", ref, cand, Tolerance(atol=None, rtol=None, min_cosine=0.99))
    assert result.cosine_min == pytest.approx(-1.0) and result.cosine_mean == pytest.approx(0.0)
    assert not result


def test_non_finite_candidate_fails() -> None:
    ref = np.zeros((1, 3), dtype=np.float32)
    cand = np.array([[0.0, np.nan, 0.0]], dtype=np.float32)
    assert not compare_arrays("y", ref, cand, Tolerance(atol=None, rtol=None, min_cosine=None))


def test_feature_maps_get_no_top_k() -> None:
    x = np.random.default_rng(1).random((2, 4, 3, 3)).astype(np.float32)
    result = compare_arrays("features", x, x, Tolerance())
    assert result.top1_agreement is None and result.passed


def test_report_fails_when_any_output_fails_and_names_missing_outputs() -> None:
    a = {"x": np.zeros((1, 2), np.float32), "y": np.zeros((1, 2), np.float32)}
    b = {"x": np.zeros((1, 2), np.float32), "y": np.ones((1, 2), np.float32)}
    report = compare_outputs(a, b, Tolerance())
    assert not report and [bool(o) for o in report.outputs] == [True, False]
    with pytest.raises(ValueError, match="did not produce"):
        compare_outputs(a, {"x": a["x"]}, Tolerance())


def test_per_output_tolerance_overrides_the_default() -> None:
    a = {"x": np.zeros((1, 2), np.float32)}
    b = {"x": np.full((1, 2), 0.5, np.float32)}
    loose = {"x": Tolerance(atol=1.0, rtol=None, min_cosine=None)}
    assert compare_outputs(a, b, Tolerance(), per_output=loose)


def test_overrides_keep_defaults_for_options_not_given() -> None:
    base = Tolerance(atol=1e-3, rtol=1e-3)
    assert with_overrides(base, atol=0.5, rtol=None) == Tolerance(atol=0.5, rtol=1e-3)
