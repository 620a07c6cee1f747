"""A timed run sends back its output at a sample of elements the grader draws, and the rule
the timing is credited for is checked there: garbage that saves time still fails, and what
the learner's process sends back in place of the sample is refused, never trusted."""
import numpy as np

from grader.checks.dropout_checks import TIMING_N, TIMING_SAMPLE, at_sample, factor_rule, sampled


class _Learner:
    def rng(self, k):
        return np.random.default_rng([0, k])


def _x_and_out(p=0.3):
    g = np.random.default_rng(1)
    x = g.uniform(1, 2, TIMING_N).astype(np.float32)
    out = np.where(g.random(TIMING_N) >= p, x / np.float32(1 - p), np.float32(0))
    return x, out


def test_the_sample_gives_the_rule_of_the_whole_output():
    from grader.checks.dropout_checks import timing_sample
    sample = timing_sample(_Learner(), 1)
    assert sample.shape == (TIMING_SAMPLE,) and sample.max() < np.prod(TIMING_N)
    x, out = _x_and_out()
    sent = sampled(out, TIMING_N, sample)
    assert set(sent) == {"sample"} and sent["sample"].nbytes == 4 * TIMING_SAMPLE
    c_all, k_all = factor_rule(x, out)
    c, k = factor_rule(*at_sample(x, sent, sample))
    assert abs(c - c_all) <= 1e-6 * c_all and abs(k - k_all) < 0.02


def test_garbage_that_saves_time_fails_on_the_sample():
    from grader.checks.dropout_checks import timing_sample
    sample = timing_sample(_Learner(), 2)
    x, out = _x_and_out()
    for garbage in (np.zeros_like(out), x.copy(), x / np.float32(0.7)):   # nothing kept, or all kept
        rule = factor_rule(*at_sample(x, sampled(garbage, TIMING_N, sample), sample))
        assert rule is None or rule[1] in (0.0, 1.0)
    skipped = out.copy()
    skipped.reshape(-1)[: out.size // 100] = 5.0      # 1 % of the work skipped: caught
    assert factor_rule(*at_sample(x, sampled(skipped, TIMING_N, sample), sample)) is None


def test_what_is_sent_in_place_of_the_sample_is_refused():
    from grader.checks.dropout_checks import timing_sample
    sample = timing_sample(_Learner(), 3)
    x, out = _x_and_out()
    forged = [{"sample": out.reshape(-1)[: TIMING_SAMPLE - 1]}, {"sample": "x"}, {"sample": None, "more": 1},
              {"not_array": "None"}, out[:10], None]
    for value in forged:
        assert factor_rule(*at_sample(x, value, sample)) is None, value
    # not an array of the input's shape: sent as it is (and refused by the rule's check)
    assert isinstance(sampled(out[:10], TIMING_N, sample), np.ndarray)
    assert sampled(out.astype(object), TIMING_N, sample) == {"not_array": "an array of dtype object"}
    assert sampled(out, TIMING_N, None).shape == TIMING_N
