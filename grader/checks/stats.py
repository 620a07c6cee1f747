"""Honest bounds for randomized checks.  Every bound here fails a correct implementation
with probability at most FAIL per use (over the draws its random generator makes);
tests state how many uses they make so that the total stays below 1e-9."""
import math

FAIL = 1e-10  # per bound; a test using k bounds risks at most k * FAIL


def hoeffding(n, fail=FAIL):
    """Half-width t with P(|mean of n independent [0,1] draws - expectation| >= t) <= fail.
    Hoeffding: P >= 2 exp(-2 n t^2) solved for t."""
    return math.sqrt(math.log(2 / fail) / (2 * n))


def variance_ratio_ok(ratio, dof, fail=FAIL):
    """Is sample variance / true variance plausible for `dof` degrees of freedom?
    Uses the Chernoff bounds for chi-square, P(X <= z k) <= (z e^(1-z))^(k/2) and the same
    for z > 1, with (near-normal) counts; returns the (low, high) band used."""
    def tail(z):
        return (z * math.exp(1 - z)) ** (dof / 2)
    lo = 0.5
    while tail(lo) > fail / 2:
        lo /= 1.1
    hi = 2.0
    while tail(hi) > fail / 2:
        hi *= 1.1
    return lo <= ratio <= hi, (lo, hi)


def pct(x, digits=1):
    return f"{100 * x:.{digits}f}%"
