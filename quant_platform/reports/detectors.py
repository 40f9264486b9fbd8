"""Online Bayesian detectors for many metric series at once: Adams and MacKay's change-point run-length posterior
(truncated to a fixed number of run lengths, so one observation costs the same whatever the history), a
discounted conjugate level-and-scale model whose posterior predictive scores outliers, and a discounted
recursive regression whose slope flags trends. One numpy update moves every series that has an observation.

Never refit on history and never look ahead: each observation updates the state once, in time order, and a
finding depends only on the observations up to the one that confirmed it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import special

CHANGE_POINT = "change_point"
OUTLIER = "outlier"
TREND = "trend"
KINDS = (CHANGE_POINT, OUTLIER, TREND)


@dataclass(frozen=True)
class DetectorParams:
    """Default parameters: the same for every series (no per-series tuning). Values are in units of the series'
    own noise scale, fixed from its first `warmup` observations."""

    # Change points (Adams & MacKay 2007, Bayesian linear regression on time within a run).
    max_run_length: int = 64  # R: run lengths 1..R-1 kept exactly, the last bin holds every run >= R
    hazard: float = 1 / 250  # prior probability of a change at each observation
    confirm_lag: int = 5  # L: a change at t is first judged once the new run has L observations ...
    confirm_horizon: int = 15  # ... and last judged when it has this many
    location_slack: int = 1  # the change may sit this many observations either side of t
    change_threshold: float = 0.90  # posterior probability of a change near t that makes a finding
    min_change_sd: float = 1.0  # ... if the level moved by at least this many noise sd
    level_precision: float = 0.01  # prior precision of a new run's level (x noise variance)
    slope_precision: float = 100.0  # prior precision of a new run's slope (x noise variance)
    prior_shape: float = 1.0  # inverse-gamma prior of the noise variance: shape
    outlier_rate: float = 0.01  # prior probability that one observation is an outlier
    outlier_scale: float = 10.0  # an outlier's spread, in predictive standard deviations
    # Outliers: surprise under the level-and-scale model's posterior predictive.
    level_discount: float = 0.95  # forgetting of the level-and-scale model per observation
    clip_sd: float = 3.0  # observations are clipped to this many predictive sd before they update the level
    outlier_threshold: float = 0.99  # posterior outlier probability that makes a finding
    # Trends: discounted least-squares slope on time, recursive (a Kalman filter for a static slope).
    trend_discount: float = 0.98
    trend_z: float = 5.0  # |slope| / standard error to enter a trend
    trend_exit_z: float = 2.0  # ... and to leave it
    trend_material_sd: float = 2.0  # the trend moves the level by this many noise scales over its window
    trend_persist: int = 5  # consecutive observations above both before a trend finding
    min_history: int = 4  # observations before the first finding of a series
    warmup: int = 8  # observations that fix the series' centre and noise scale

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DetectorParams:
        return cls(**json.loads(text))


@dataclass
class Findings:
    """Findings of one update, as columns (one entry per finding)."""

    series: list[int] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    time: list[int] = field(default_factory=list)  # when it happened (ns)
    detected_time: list[int] = field(default_factory=list)  # the observation that confirmed it (ns)
    probability: list[float] = field(default_factory=list)
    surprise: list[float] = field(default_factory=list)  # -log10 of the predictive tail probability
    magnitude: list[float] = field(default_factory=list)  # after - before, in the metric's unit (trend: per obs)
    magnitude_sd: list[float] = field(default_factory=list)  # the same in noise standard deviations
    estimate_before: list[float] = field(default_factory=list)
    estimate_after: list[float] = field(default_factory=list)

    def extend(self, other: Findings) -> None:
        for name in self.__dataclass_fields__:
            getattr(self, name).extend(getattr(other, name))

    def __len__(self) -> int:
        return len(self.series)

    def columns(self) -> dict[str, list]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


# Per-series state: name -> (shape suffix, dtype, initial value). R = run lengths, K = delay ring, W = warm-up.
_STATE = {
    "n": ((), np.int64, 0),  # observations seen
    "centre": ((), np.float64, 0.0),
    "scale": ((), np.float64, 1.0),
    "warm_x": (("W",), np.float64, 0.0),
    "warm_t": (("W",), np.int64, 0),
    "p": (("R",), np.float64, 0.0),  # run-length posterior, bin j = run length j+1 (last bin: >= R)
    "sx": (("R",), np.float64, 0.0),  # per bin: sum x, sum tau*x, sum x^2 of the run's last j+1 observations
    "stx": (("R",), np.float64, 0.0),
    "sxx": (("R",), np.float64, 0.0),
    "lw": ((), np.float64, 0.0),  # level model: discounted weight, mean, sum of squares
    "lm": ((), np.float64, 0.0),
    "lm2": ((), np.float64, 0.0),
    "t0": ((), np.float64, 0.0),  # trend: discounted sums over tau (0 = latest observation)
    "t1": ((), np.float64, 0.0),
    "t2": ((), np.float64, 0.0),
    "ty": ((), np.float64, 0.0),
    "tty": ((), np.float64, 0.0),
    "tyy": ((), np.float64, 0.0),
    "trend_state": ((), np.int64, 0),  # -1, 0, +1
    "trend_run": ((), np.int64, 0),  # consecutive observations beyond the entry threshold
    "last_cp": ((), np.int64, -(10**9)),  # sequence number of the last change point found
    "ring_t": (("K",), np.int64, 0),  # last K observations: time, value, predictive mean/sd, outlier prob
    "ring_x": (("K",), np.float64, 0.0),
    "ring_mean": (("K",), np.float64, 0.0),
    "ring_sd": (("K",), np.float64, 0.0),
    "ring_pout": (("K",), np.float64, 0.0),
    "ring_tail": (("K",), np.float64, 0.0),
}


class DetectorBank:
    """The detectors of many series, as arrays with one row per series (`series_ids[i]` is row i)."""

    def __init__(self, params: DetectorParams | None = None):
        self.params = params or DetectorParams()
        p = self.params
        if not p.confirm_lag - p.location_slack >= 2 or p.max_run_length < p.confirm_horizon + p.location_slack + 2:
            raise ValueError("need confirm_lag - location_slack >= 2 and max_run_length > confirm_horizon + "
                             "location_slack + 1")
        self.R, self.K, self.W = p.max_run_length, p.confirm_horizon + p.location_slack + 1, p.warmup
        self.series_ids: list[str] = []
        self._index: dict[str, int] = {}
        self.arrays = {name: self._blank(name, 0) for name in _STATE}
        self._precompute()

    # ------------------------------------------------------------------ state
    def _dims(self, name: str, rows: int) -> tuple[int, ...]:
        sizes = {"R": self.R, "K": self.K, "W": self.W}
        return (rows, *(sizes[s] for s in _STATE[name][0]))

    def _blank(self, name: str, rows: int) -> np.ndarray:
        _, dtype, value = _STATE[name]
        return np.full(self._dims(name, rows), value, dtype=dtype)

    def rows(self, series_ids) -> np.ndarray:
        """Row of each series id, adding new series (blank state) at the end."""
        new = [s for s in dict.fromkeys(series_ids) if s not in self._index]
        if new:
            start = len(self.series_ids)
            for k, s in enumerate(new):
                self._index[s] = start + k
            self.series_ids.extend(new)
            for name in _STATE:
                self.arrays[name] = np.concatenate([self.arrays[name], self._blank(name, len(new))])
        return np.fromiter((self._index[s] for s in series_ids), dtype=np.int64, count=len(series_ids))

    def state_equal(self, other: DetectorBank) -> bool:
        return self.series_ids == other.series_ids and all(
            np.array_equal(self.arrays[k], other.arrays[k]) for k in _STATE)

    # ------------------------------------------------------------------ constants per run length
    def _precompute(self) -> None:
        p = self.params
        ell = np.arange(1, self.R + 1, dtype=np.float64)
        t1 = ell * (ell - 1) / 2  # sum of tau over a run of ell observations (tau = 0..ell-1)
        t2 = (ell - 1) * ell * (2 * ell - 1) / 6
        l11, l12, l22 = p.level_precision + ell, t1, p.slope_precision + t2
        det = l11 * l22 - l12 * l12
        self.a11, self.a12, self.a22 = l22 / det, -l12 / det, l11 / det  # inverse posterior precision
        q = self.a11 + 2 * ell * self.a12 + ell * ell * self.a22  # phi*' A phi* at the next tau = ell
        an = p.prior_shape + ell / 2
        self.ell, self.an, self.one_q = ell, an, 1 + q
        self.an_half, self.inv_two_one_q = an + 0.5, 1 / (2 * (1 + q))
        self.kconst = special.gammaln(an + 0.5) - special.gammaln(an) - 0.5 * math.log(2 * math.pi) - 0.5 * np.log(1 + q)
        a0 = p.prior_shape
        self.q0 = 1 / p.level_precision
        self.k0 = (special.gammaln(a0 + 0.5) - special.gammaln(a0) - 0.5 * math.log(2 * math.pi)
                   - 0.5 * math.log(1 + self.q0))
        self.log_h, self.log_1h = math.log(p.hazard), math.log1p(-p.hazard)
        self.log_eps, self.log_1eps = math.log(p.outlier_rate), math.log1p(-p.outlier_rate)

    # ------------------------------------------------------------------ observations
    def update(self, rows: np.ndarray, values: np.ndarray, times: np.ndarray, scored: dict | None = None) -> Findings:
        """One observation for each of `rows` (distinct), in time order per series. Warm-up observations are
        held until the series has `warmup` of them, then replayed. Returns the findings these confirmed; with
        `scored`, appends each observation's predictive mean and sd (metric units) to its lists."""
        found = Findings()
        ok = np.isfinite(values)
        rows, values, times = rows[ok], values[ok].astype(np.float64), times[ok].astype(np.int64)
        if not len(rows):
            return found
        a = self.arrays
        n = a["n"][rows]
        warming = n < self.W
        if warming.any():
            wr, slot = rows[warming], n[warming]
            a["warm_x"][wr, slot] = values[warming]
            a["warm_t"][wr, slot] = times[warming]
            a["n"][wr] += 1
            if scored is not None:
                self._score(scored, wr, values[warming], times[warming], np.full(len(wr), np.nan),
                            np.full(len(wr), np.nan))
            ready = wr[a["n"][wr] == self.W]
            if len(ready):
                found.extend(self._finish_warmup(ready, scored))
        live = ~warming
        if live.any():
            lr = rows[live]
            x = (values[live] - a["centre"][lr]) / a["scale"][lr]
            found.extend(self._step(lr, x, times[live], scored))
        return found

    def _finish_warmup(self, rows: np.ndarray, scored: dict | None) -> Findings:
        """Fix centre and noise scale from the warm-up observations, then run them through the detectors."""
        a = self.arrays
        buf = a["warm_x"][rows]
        centre = np.median(buf, axis=1)
        d = np.diff(buf, axis=1)
        mad = np.median(np.abs(d - np.median(d, axis=1, keepdims=True)), axis=1) * 1.4826 / math.sqrt(2)
        sd = buf.std(axis=1)
        scale = np.where(mad > 0, mad, np.where(sd > 0, sd, np.where(centre != 0, np.abs(centre) * 1e-6, 1.0)))
        a["centre"][rows], a["scale"][rows] = centre, scale
        a["n"][rows] = 0
        found = Findings()
        for k in range(self.W):
            x = (buf[:, k] - centre) / scale
            t = a["warm_t"][rows, k]
            if k == 0:
                self._start(rows, x, t)
            else:
                found.extend(self._step(rows, x, t, None))
        return found

    def _start(self, rows: np.ndarray, x: np.ndarray, t: np.ndarray) -> None:
        a = self.arrays
        p = np.zeros((len(rows), self.R))
        p[:, 0] = 1.0
        a["p"][rows] = p
        z = np.zeros((len(rows), self.R))
        a["sx"][rows], a["stx"][rows], a["sxx"][rows] = z + x[:, None], z, z + (x * x)[:, None]
        a["lw"][rows], a["lm"][rows], a["lm2"][rows] = 1.0, x, 0.0
        a["t0"][rows], a["t1"][rows], a["t2"][rows] = 1.0, 0.0, 0.0
        a["ty"][rows], a["tty"][rows], a["tyy"][rows] = x, 0.0, x * x
        a["trend_state"][rows], a["trend_run"][rows], a["last_cp"][rows] = 0, 0, -(10**9)
        slot = np.zeros(len(rows), dtype=np.int64)
        a["ring_t"][rows, slot], a["ring_x"][rows, slot] = t, x
        a["ring_mean"][rows, slot], a["ring_sd"][rows, slot], a["ring_pout"][rows, slot] = x, np.inf, 0.0
        a["ring_tail"][rows, slot] = 1.0
        a["n"][rows] = 1

    def _level_predictive(self, lw, lm2):
        """Student-t predictive of the level-and-scale model: (degrees of freedom, scale), standardized units."""
        shape = 0.5 + lw / 2
        var = (0.5 + lm2 / 2) / shape
        return 2 * shape, np.sqrt(var * (1 + 1 / np.maximum(lw, 1e-12)))

    def _step(self, rows: np.ndarray, x: np.ndarray, t: np.ndarray, scored: dict | None) -> Findings:
        """The update of live (warmed-up) series: standardized values `x`."""
        P = self.params
        a = self.arrays
        full = len(rows) == len(self.series_ids) and (len(rows) == 0 or (rows[0] == 0 and np.all(np.diff(rows) == 1)))
        take = (lambda k: a[k]) if full else (lambda k: a[k][rows])
        n = take("n")
        lw, lm, lm2 = take("lw"), take("lm"), take("lm2")

        # -- level-and-scale model: predictive before the update, outlier probability, then the update
        df, lsd = self._level_predictive(lw, lm2)
        z = (x - lm) / lsd
        log_f = _t_logpdf(z, df) - np.log(lsd)
        log_g = _t_logpdf(z / P.outlier_scale, df) - np.log(lsd * P.outlier_scale)
        lo = self.log_eps + log_g
        pout = np.exp(lo - np.logaddexp(lo, self.log_1eps + log_f))
        tail = 2 * special.stdtr(df, -np.abs(z))
        clipped = lm + np.clip(x - lm, -P.clip_sd * lsd, P.clip_sd * lsd)
        dl = P.level_discount
        w_old = dl * lw
        lw_new = w_old + 1
        d = clipped - lm
        lm_new = lm + d / lw_new
        lm2_new = dl * lm2 + w_old * d * d / lw_new
        if scored is not None:
            sc = a["scale"][rows]
            self._score(scored, rows, a["centre"][rows] + sc * x, t, a["centre"][rows] + sc * lm, sc * lsd)

        # -- run-length posterior (Adams & MacKay), Bayesian linear regression on tau within each run
        pr, sx, stx, sxx = take("p"), take("sx"), take("stx"), take("sxx")
        m = lm[:, None]
        b0 = (P.prior_shape * np.maximum(lm2 / np.maximum(lw, 1.0), 1e-6))[:, None]
        # In place on a few buffers: this block is the whole cost of an update (every op is series x R).
        b1 = np.add(sx, P.level_precision * m)
        mu1 = np.multiply(self.a11, b1)
        tmp = np.multiply(self.a12, stx)
        mu1 += tmp
        mu2 = np.multiply(self.a12, b1)
        np.multiply(self.a22, stx, out=tmp)
        mu2 += tmp
        bn = np.multiply(mu1, b1, out=b1)  # b1 is not needed any more
        np.subtract(sxx, bn, out=bn)
        np.multiply(mu2, stx, out=tmp)
        bn -= tmp
        bn *= 0.5
        bn += b0 + 0.5 * P.level_precision * m * m
        np.maximum(bn, 1e-12, out=bn)
        np.multiply(self.ell, mu2, out=mu2)
        mu2 += mu1  # predictive location of each run at the next tau
        resid = np.subtract(x[:, None], mu2, out=mu2)
        resid *= resid
        resid /= bn
        resid *= self.inv_two_one_q
        np.log1p(resid, out=resid)
        resid *= self.an_half
        np.log(bn, out=bn)
        bn *= 0.5
        resid += bn
        logt = np.subtract(self.kconst, resid, out=resid)  # log Student-t predictive of every run length
        b0v = b0[:, 0]
        r0 = x - lm
        a0 = P.prior_shape
        logt0 = self.k0 - 0.5 * np.log(b0v) - (a0 + 0.5) * np.log1p(r0 * r0 / (2 * b0v * (1 + self.q0)))
        logpi0 = np.logaddexp(self.log_1eps + logt0, self.log_eps + log_g)
        # normaliser from the run lengths that carry mass (the others hold partial sums, never used)
        top = np.maximum(np.maximum(np.where(pr > 0, logt, -np.inf).max(axis=1) + self.log_1eps,
                                    self.log_eps + log_g), logpi0)
        # each run's predictive is a mixture: (1 - outlier_rate) Student-t + outlier_rate broad outlier density
        logt -= (top - self.log_1eps)[:, None]
        grow = np.exp(logt, out=logt)
        grow += (np.exp(self.log_eps + log_g - top))[:, None]
        grow *= pr
        grow *= 1 - P.hazard
        newp = np.empty_like(pr)
        newp[:, 0] = P.hazard * np.exp(logpi0 - top)
        newp[:, 1:] = grow[:, :-1]
        newp[:, -1] += grow[:, -1]
        newp /= newp.sum(axis=1, keepdims=True)
        xc = x[:, None]
        nsx, nstx, nsxx = np.empty_like(sx), np.empty_like(stx), np.empty_like(sxx)
        nsx[:, 0], nstx[:, 0], nsxx[:, 0] = x, 0.0, x * x
        nsx[:, 1:] = sx[:, :-1] + xc
        nstx[:, 1:] = stx[:, :-1] + self.ell[:-1] * xc
        nsxx[:, 1:] = sxx[:, :-1] + xc * xc

        # -- trend: shift tau by one, discount, add the new (clipped) point at tau = 0
        t0, t1, t2, ty, tty, tyy = (take(k) for k in ("t0", "t1", "t2", "ty", "tty", "tyy"))
        dt = P.trend_discount
        t2 = dt * (t2 - 2 * t1 + t0)
        t1 = dt * (t1 - t0)
        tty = dt * (tty - ty)
        t0, ty, tyy = dt * t0 + 1, dt * ty + clipped, dt * tyy + clipped * clipped

        n_new = n + 1
        seq = n  # sequence number of this observation (0-based)
        slot = seq % self.K
        ring = {k: take(k) for k in ("ring_t", "ring_x", "ring_mean", "ring_sd", "ring_pout", "ring_tail")}
        idx = np.arange(len(rows))
        ring["ring_t"][idx, slot], ring["ring_x"][idx, slot] = t, x
        ring["ring_mean"][idx, slot], ring["ring_sd"][idx, slot] = lm, lsd
        ring["ring_pout"][idx, slot], ring["ring_tail"][idx, slot] = pout, tail

        found = Findings()
        last_cp = take("last_cp").copy()
        # -- change point: a run that started confirm_lag..confirm_horizon observations back (give or take
        # location_slack) holds change_threshold of the posterior; the most probable such start is reported
        L, s, H = P.confirm_lag, P.location_slack, P.confirm_horizon
        cum = np.concatenate([np.zeros((len(rows), 1)), np.cumsum(newp[:, : H + s], axis=1)], axis=1)
        centres = np.arange(L, H + 1)  # candidate run lengths
        qk = cum[:, centres + s] - cum[:, centres - s - 1]  # mass of run lengths centre-s .. centre+s
        loc_k = seq[:, None] - (centres[None, :] - 1)
        ok_k = (qk >= P.change_threshold) & (loc_k >= P.min_history) & (loc_k > last_cp[:, None] + s + 1)
        cp = ok_k.any(axis=1)
        pick = np.argmax(np.where(ok_k, qk, -1.0), axis=1)
        q = qk[np.arange(len(rows)), pick]
        centre = centres[pick]
        seg = newp[np.arange(len(rows))[:, None], (centre[:, None] - s - 1) + np.arange(2 * s + 1)[None, :]]
        run_len = centre - s + np.argmax(seg, axis=1)
        loc = seq - (run_len - 1)
        q_lag = qk[:, 0]  # change mass around the observation confirm_lag-1 back (for the outlier test)
        reset = np.zeros(len(rows), dtype=bool)
        for i in np.flatnonzero(cp):
            r = rows[i]
            j = run_len[i] - 1
            ls = int(loc[i]) % self.K
            before = ring["ring_mean"][i, ls]
            mu1_i = self.a11[j] * (P.level_precision * lm[i] + nsx[i, j]) + self.a12[j] * nstx[i, j]
            mu2_i = self.a12[j] * (P.level_precision * lm[i] + nsx[i, j]) + self.a22[j] * nstx[i, j]
            after = mu1_i + mu2_i * j
            noise = max(math.sqrt(max(b0v[i] / P.prior_shape, 1e-12)), 1e-12)
            if abs(after - before) < P.min_change_sd * noise:
                continue
            self._add(found, r, CHANGE_POINT, ring["ring_t"][i, ls], t[i], float(q[i]),
                      -math.log10(max(float(ring["ring_tail"][i, ls]), 1e-300)), before, after,
                      (after - before) / noise)
            last_cp[i] = loc[i]
            reset[i] = True
            # the level-and-scale model restarts from the new run
            cnt = j + 1
            lw_new[i] = cnt
            lm_new[i] = nsx[i, j] / cnt
            lm2_new[i] = max(nsxx[i, j] - nsx[i, j] ** 2 / cnt, 0.0)
            t0[i] = t1[i] = t2[i] = ty[i] = tty[i] = tyy[i] = 0.0

        # -- outlier: the observation confirm_lag-1 back, unless a change explains it
        u = seq - (L - 1)
        us = u % self.K
        pu = ring["ring_pout"][idx, us]
        near_cp = (u >= last_cp - s) & (u < last_cp + L)
        out = (u >= P.min_history) & (pu >= P.outlier_threshold) & ~near_cp & (q_lag < 0.5)
        for i in np.flatnonzero(out):
            xv, mv, sdv = ring["ring_x"][i, us[i]], ring["ring_mean"][i, us[i]], ring["ring_sd"][i, us[i]]
            self._add(found, rows[i], OUTLIER, ring["ring_t"][i, us[i]], t[i], float(pu[i]),
                      -math.log10(max(float(ring["ring_tail"][i, us[i]]), 1e-300)), mv, xv, (xv - mv) / sdv)

        # -- trend: slope t-statistic with hysteresis
        with np.errstate(divide="ignore", invalid="ignore"):
            stt = t2 - t1 * t1 / t0
            sty = tty - t1 * ty / t0
            slope = sty / stt
            rss = np.maximum(tyy - ty * ty / t0 - slope * sty, 0.0)
            dof = t0 - 2
            sig2 = rss / dof
            zt = slope / np.sqrt(sig2 / stt)
            move = np.abs(slope) * t0  # over the window, in units of the series noise scale (fixed at warm-up)
        valid = (dof > 3) & np.isfinite(zt)
        tstate, trun = take("trend_state").copy(), take("trend_run").copy()
        strong = valid & (np.abs(zt) >= P.trend_z) & (move >= P.trend_material_sd) & ~reset
        sign = np.where(valid, np.sign(zt), 0).astype(np.int64)
        trun = np.where(strong, np.where(np.sign(trun) == sign, trun + sign, sign), 0).astype(np.int64)
        leave = (tstate != 0) & (~valid | (np.abs(zt) < P.trend_exit_z) | (np.sign(zt) != tstate) | reset)
        tstate[leave] = 0
        enter = (tstate == 0) & (np.abs(trun) >= P.trend_persist) & (seq >= P.min_history)
        for i in np.flatnonzero(enter):
            start = (seq[i] - (P.trend_persist - 1)) % self.K
            level_now = ty[i] / t0[i] - slope[i] * (t1[i] / t0[i])
            level_then = level_now - slope[i] * (P.trend_persist - 1)
            prob = float(special.stdtr(max(dof[i], 1.0), abs(zt[i])))
            self._add(found, rows[i], TREND, ring["ring_t"][i, start], t[i], prob,
                      -math.log10(max(1 - prob, 1e-300)), level_then, level_now, float(move[i]) * np.sign(slope[i]),
                      slope_per_obs=float(slope[i]))
            tstate[i] = int(np.sign(zt[i]))

        # -- write back
        new = {"n": n_new, "lw": lw_new, "lm": lm_new, "lm2": lm2_new, "p": newp, "sx": nsx, "stx": nstx,
               "sxx": nsxx, "t0": t0, "t1": t1, "t2": t2, "ty": ty, "tty": tty, "tyy": tyy, "trend_state": tstate,
               "trend_run": trun, "last_cp": last_cp, **ring}
        for k, v in new.items():
            if full:
                a[k] = np.asarray(v, dtype=a[k].dtype)
            else:
                a[k][rows] = v
        return found

    def _add(self, found: Findings, row, kind, time, detected, prob, surprise, before, after, size_sd,
             slope_per_obs: float | None = None) -> None:
        a = self.arrays
        c, s = float(a["centre"][row]), float(a["scale"][row])
        found.series.append(int(row))
        found.kind.append(kind)
        found.time.append(int(time))
        found.detected_time.append(int(detected))
        found.probability.append(round(float(prob), 6))
        found.surprise.append(round(float(min(surprise, 300.0)), 4))
        found.estimate_before.append(c + s * float(before))
        found.estimate_after.append(c + s * float(after))
        found.magnitude.append(s * slope_per_obs if slope_per_obs is not None else s * float(after - before))
        found.magnitude_sd.append(round(float(size_sd), 4))

    @staticmethod
    def _score(scored: dict, rows, values, times, mean, sd) -> None:
        scored.setdefault("row", []).append(np.asarray(rows))
        scored.setdefault("time", []).append(np.asarray(times))
        scored.setdefault("value", []).append(np.asarray(values, dtype=np.float64))
        scored.setdefault("pred_mean", []).append(np.asarray(mean, dtype=np.float64))
        scored.setdefault("pred_sd", []).append(np.asarray(sd, dtype=np.float64))

    # ------------------------------------------------------------------ whole frames
    def run(self, series: np.ndarray, times: np.ndarray, values: np.ndarray, scored: dict | None = None) -> Findings:
        """Observations in any order: sorted by (time, series) and applied one timestamp at a time."""
        rows = self.rows(list(series))
        order = np.lexsort((rows, times))
        rows, times, values = rows[order], np.asarray(times)[order], np.asarray(values, dtype=np.float64)[order]
        found = Findings()
        if not len(rows):
            return found
        cuts = np.flatnonzero(np.diff(times)) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [len(rows)]])
        for b, e in zip(starts, ends, strict=True):
            found.extend(self.update(rows[b:e], values[b:e], times[b:e], scored))
        return found


def _t_logpdf(z: np.ndarray, df: np.ndarray) -> np.ndarray:
    """log density of the standard Student-t at z (the caller subtracts log scale)."""
    return (special.gammaln((df + 1) / 2) - special.gammaln(df / 2) - 0.5 * np.log(df * math.pi)
            - (df + 1) / 2 * np.log1p(z * z / df))
