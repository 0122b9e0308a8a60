"""Model snapshots as data: what the trainer publishes to the model topic and every worker loads.

A snapshot is ``MAGIC``, ``format_version`` (big-endian uint16), then one zlib stream of a JSON
document (orjson) with the learned state only: weights, intercepts, optimizer iteration counts,
BayesianLinearRegression's matrices, metric counts and means, versions, lineage, the trainer's
recently seen example ids and the offset the snapshot covers.  Arrays and weight vectors travel as
dtype + shape + base64 bytes, so every float comes back bit for bit (NaN and infinities included);
dict orders are kept, as River's sums run in them.

Loading never runs code named by the data (no pickle, no class or function names in it): the
models are built by their own constructors (``Models()``) and the learned state is set on them,
field by field, after type and shape checks.  A payload that is too large, cannot be read (not a
snapshot, truncated, a pickle, wrong types, inconsistent shapes) or has an unknown
``format_version`` raises ``SnapshotRefused`` with a short ``reason``; nothing is half-applied.

Evolving the format: unknown fields are ignored; a change that an older reader would misread
bumps ``FORMAT_VERSION`` and keeps a decoder in ``_DECODERS`` for each older version still on the
topic.  The version sits before the compressed body so a later version may change compression.
Hyperparameters (learning rates, hashing widths) come from the code, not the snapshot: a release
that changes them must bump the version if old weights would no longer fit.  Format 2 (issue 14):
the sentiment model learns per-class counts of token buckets and a Bayesian layer (mean and
covariance) instead of format 1's logistic-regression weights, which fit no model any more: a
format 1 snapshot loads with the sentiment model's counters (version, class counts, quality) and
its learned state fresh (it starts again from the lexicon prior), everything else as it was.
The sentiment model's warm-start word counts (streams/models/data, see its docstring) are code, like
the hyperparameters: a snapshot holds the learned counts only, so format 2 snapshots written
before the warm start load as they are, the prior added to their counts.
Export checks that each estimator is the configuration handled here (e.g. constant-rate SGD, no
L1), so a model change that adds learned state fails loudly (TypeError at dump, in the unit tests)
instead of dropping it.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import numpy as np
import orjson
from river import linear_model, metrics, optim, stats

from streams.errors import StreamsError
from streams.models.engagement import CreativeClickModel, PostEngagementModel
from streams.models.sentiment import CLASSES, Progressive, SentimentModel
from streams.training import MAX_SEEN_EXAMPLES, Models, Trainer

MAGIC: Final = b"SSMODELS"
FORMAT_VERSION: Final = 2
MAX_SNAPSHOT_BYTES: Final = 64 * 1024 * 1024  # compressed: one Kafka message (MAX_MODEL_BYTES)
MAX_DECOMPRESSED_BYTES: Final = 256 * 1024 * 1024
COMPRESSION_LEVEL: Final = 1  # as the pickle snapshots: ~6% larger than level 6, half the time
Reason = Literal["oversized", "unreadable", "unknown_version"]
REASONS: Final[tuple[Reason, ...]] = ("oversized", "unreadable", "unknown_version")

_HEADER: Final = struct.Struct(f">{len(MAGIC)}sH")
_DTYPES: Final = {"<f8": np.dtype(np.float64), "<u8": np.dtype(np.uint64)}
_NON_FINITE: Final = ("nan", "inf", "-inf")
Json = Any  # what orjson reads or writes


class SnapshotRefused(StreamsError):
    """A model snapshot that was not loaded (or not written).  ``reason`` is one of ``REASONS``,
    fit for a metric label; the message says why."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"model snapshot refused ({reason}): {detail}")
        self.reason: Reason = reason
        self.detail = detail


class _Bad(ValueError):
    """The document does not hold what format v1 says (becomes reason "unreadable")."""


# --- the envelope ---------------------------------------------------------------------------


def dump(trainer: Trainer, offset: int) -> bytes:
    """The snapshot of ``trainer`` covering the training topic up to ``offset``.

    Raises ``SnapshotRefused("oversized")`` when it would exceed what ``load`` accepts."""
    doc = {"offset": _int_out(offset), "trainer": _trainer_out(trainer),
           "models": _models_out(trainer.models)}
    body = orjson.dumps(doc)
    if len(body) > MAX_DECOMPRESSED_BYTES:
        raise SnapshotRefused("oversized", f"{len(body)} bytes uncompressed, more than "
                              f"{MAX_DECOMPRESSED_BYTES}")
    data = _HEADER.pack(MAGIC, FORMAT_VERSION) + zlib.compress(body, COMPRESSION_LEVEL)
    if len(data) > MAX_SNAPSHOT_BYTES:
        raise SnapshotRefused("oversized", f"{len(data)} bytes, more than {MAX_SNAPSHOT_BYTES}")
    return data


def load(data: bytes) -> tuple[Trainer, int]:
    """The trainer and offset of a snapshot made by ``dump`` (this or an older supported
    format version).  Raises ``SnapshotRefused`` for anything else."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SnapshotRefused("unreadable", f"expected bytes, got {type(data).__name__}")
    if len(data) > MAX_SNAPSHOT_BYTES:
        raise SnapshotRefused("oversized", f"{len(data)} bytes, more than {MAX_SNAPSHOT_BYTES}")
    data = bytes(data)
    if len(data) < _HEADER.size or not data.startswith(MAGIC):
        raise SnapshotRefused("unreadable", "not a model snapshot (no magic tag)")
    _, version = _HEADER.unpack_from(data)
    decode = _DECODERS.get(version)
    if decode is None:
        raise SnapshotRefused("unknown_version", f"format_version {version}; this build reads "
                              f"{', '.join(map(str, sorted(_DECODERS)))}")
    body = _inflate(data[_HEADER.size:])
    try:
        return decode(orjson.loads(body))
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        # ValueError covers _Bad, orjson.JSONDecodeError and binascii.Error.
        why = (str(exc) if isinstance(exc, _Bad) else f"missing field {exc}"
               if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}")
        raise SnapshotRefused("unreadable", _short(f"format_version {version}: {why}")) from None


def _inflate(compressed: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(compressed, MAX_DECOMPRESSED_BYTES + 1)
    except zlib.error as exc:
        raise SnapshotRefused("unreadable", _short(f"bad zlib stream: {exc}")) from None
    if len(body) > MAX_DECOMPRESSED_BYTES:
        raise SnapshotRefused("oversized", f"more than {MAX_DECOMPRESSED_BYTES} bytes "
                              "uncompressed")
    if not inflater.eof:
        raise SnapshotRefused("unreadable", "truncated (the zlib stream does not end)")
    if inflater.unused_data:
        raise SnapshotRefused("unreadable", "trailing bytes after the zlib stream")
    return body


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# --- format v1: export ----------------------------------------------------------------------


def _trainer_out(trainer: Trainer) -> Json:
    seen = np.fromiter(trainer.seen, dtype=np.uint64, count=len(trainer.seen))
    return {"seen": _array_out(seen), "duplicates": _int_out(trainer.duplicates)}


def _models_out(m: Models) -> Json:
    return {"version": _int_out(m.version), "lineage": _str_out(m.lineage),
            "sentiment": _sentiment_out(m.sentiment), "posts": _posts_out(m.posts),
            "creatives": _creatives_out(m.creatives)}


def _sentiment_out(s: SentimentModel) -> Json:
    words, stacker = s.words, s.stacker
    counts = np.array(list(words.counts.values()), dtype=np.uint64).reshape(-1, len(CLASSES))
    return {"version": _int_out(s.version),
            "class_counts": {_str_out(k): _int_out(v) for k, v in s.class_counts.items()},
            "words": {"buckets": _array_out(np.fromiter(words.counts, dtype=np.uint64,
                                                        count=len(words.counts))),
                      "counts": _array_out(counts),
                      "totals": [_int_out(t) for t in words.totals]},
            "stacker": {"n": _int_out(stacker.n), "mean": _array_out(stacker.mean),
                        "cov": _array_out(stacker.cov)},
            "quality": _progressive_out(s.quality)}


def _progressive_out(q: Progressive) -> Json:
    return {"n": _int_out(q.n), "accuracy": _cm_out(q.accuracy.cm),
            "macro_f1": _cm_out(q.macro_f1.cm), "macro_recall": _cm_out(q.macro_recall.cm)}


def _posts_out(p: PostEngagementModel) -> Json:
    return {"n": _int_out(p.n), "version": _int_out(p.version),
            "regressor": _blr_out(p.regressor), "mae": _mean_out(p.mae)}


def _creatives_out(c: CreativeClickModel) -> Json:
    return {"n": _int_out(c.n), "version": _int_out(c.version),
            "classifier": _logreg_out(c.classifier), "log_loss": _mean_out(c.log_loss),
            "roc_auc": [_cm_out(cm) for cm in c.roc_auc.cms]}


def _logreg_out(clf: Any) -> Json:
    _check_logreg(clf)
    weights = clf._weights
    return {"intercept": _float_out(clf.intercept),
            "n_iterations": _int_out(clf.optimizer.n_iterations),
            "weights": {"names": [_str_out(k) for k in weights],
                        "values": _array_out(np.fromiter(weights.values(), dtype=np.float64,
                                                         count=len(weights)))}}


def _check_logreg(clf: Any) -> None:
    """The learned state of this configuration is intercept, weights and the SGD step count
    (the loss, schedulers and initializer hold none; L1 would add cumulative penalties)."""
    if not (type(clf) is linear_model.LogisticRegression and type(clf.optimizer) is optim.SGD
            and type(clf.optimizer.lr) is optim.schedulers.Constant
            and type(clf.intercept_lr) is optim.schedulers.Constant and clf.l1 == 0):
        raise TypeError(f"model snapshots cannot export {clf!r}: extend streams/model_snapshot.py")


def _blr_out(r: Any) -> Json:
    _check_blr(r)
    if list(r._idx.values()) != list(range(len(r._idx))):
        raise TypeError("BayesianLinearRegression._idx is not in insertion order")
    return {"features": [_str_out(f) for f in r._idx], "cap": _int_out(r._cap),
            "ss": _array_out(r._ss_arr), "ss_inv": _array_out(r._ss_inv_arr),
            "eta": _array_out(r._eta_arr), "m": _array_out(r._m_arr),
            "m_dirty": bool(r._m_dirty)}


def _check_blr(r: Any) -> None:
    if type(r) is not linear_model.BayesianLinearRegression:
        raise TypeError(f"model snapshots cannot export {r!r}: extend streams/model_snapshot.py")


def _mean_out(metric: Any) -> Json:
    mean = metric._mean
    if type(mean) is not stats.Mean:
        raise TypeError(f"model snapshots cannot export {metric!r}")
    return {"n": _float_out(mean.n), "mean": _float_out(mean._mean)}


def _cm_out(cm: metrics.ConfusionMatrix) -> Json:
    return {"n_samples": _int_out(cm.n_samples), "total_weight": _num_out(cm.total_weight),
            "total_true_positives": _num_out(cm._total_true_positives),
            "sum_row": _cells_out(cm.sum_row), "sum_col": _cells_out(cm.sum_col),
            "data": [[_label_out(y), _cells_out(row)] for y, row in cm.data.items()]}


def _cells_out(cells: Mapping[Any, Any]) -> Json:
    return [[_label_out(k), _num_out(v)] for k, v in cells.items()]


def _label_out(label: Any) -> Json:
    if not isinstance(label, str | bool):
        raise TypeError(f"model snapshots only export str and bool labels, not {label!r}")
    return label


def _str_out(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"model snapshots expected a str, not {value!r}")
    return value


def _int_out(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"model snapshots expected an int, not {value!r}")
    return int(value)


def _float_out(value: Any) -> Json:
    f = float(value)
    return f if math.isfinite(f) else repr(f)  # "nan", "inf", "-inf": JSON has no such numbers


def _num_out(value: Any) -> Json:
    """An int or a float, keeping which (River's counters are either)."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    return _float_out(value)


def _array_out(a: np.ndarray[Any, Any]) -> Json:
    dtype = a.dtype.newbyteorder("<")
    if dtype.str not in _DTYPES:
        raise TypeError(f"model snapshots cannot export arrays of {a.dtype}")
    return {"dtype": dtype.str, "shape": list(a.shape),
            "data": base64.b64encode(a.astype(dtype, copy=False).tobytes(order="C")).decode()}


# --- format v1: import ----------------------------------------------------------------------


def _decode_v1(doc: Json) -> tuple[Trainer, int]:
    """Format 1: its sentiment weights fit no model any more (module docstring)."""
    return _decode(doc, sentiment_state=False)


def _decode_v2(doc: Json) -> tuple[Trainer, int]:
    return _decode(doc, sentiment_state=True)


def _decode(doc: Json, *, sentiment_state: bool) -> tuple[Trainer, int]:
    doc = _obj(doc, "snapshot")
    offset = _int(doc["offset"], "offset", low=-1)
    models = Models()
    _models_in(models, _obj(doc["models"], "models"), sentiment_state)
    raw = _obj(doc["trainer"], "trainer")
    trainer = Trainer(models)
    seen = _array_in(raw["seen"], "trainer.seen", "<u8", ndim=1).tolist()
    trainer.seen = OrderedDict.fromkeys(seen[-MAX_SEEN_EXAMPLES:])  # the newest, as learn keeps
    trainer.duplicates = _int(raw["duplicates"], "trainer.duplicates")
    return trainer, offset


def _models_in(m: Models, raw: dict[str, Json], sentiment_state: bool) -> None:
    m.version = _int(raw["version"], "models.version")
    m.lineage = _str(raw["lineage"], "models.lineage")
    sentiment = _obj(raw["sentiment"], "sentiment")
    _sentiment_counters_in(m.sentiment, sentiment)
    if sentiment_state:
        _sentiment_state_in(m.sentiment, sentiment)
    _posts_in(m.posts, _obj(raw["posts"], "posts"))
    _creatives_in(m.creatives, _obj(raw["creatives"], "creatives"))


def _sentiment_counters_in(s: SentimentModel, raw: dict[str, Json]) -> None:
    s.version = _int(raw["version"], "sentiment.version")
    for label, count in _obj(raw["class_counts"], "sentiment.class_counts").items():
        s.class_counts[label] = _int(count, "sentiment.class_counts")
    quality = _obj(raw["quality"], "sentiment.quality")
    s.quality.n = _int(quality["n"], "sentiment.quality.n")
    for name, metric in (("accuracy", s.quality.accuracy), ("macro_f1", s.quality.macro_f1),
                         ("macro_recall", s.quality.macro_recall)):
        _cm_in(metric.cm, quality[name], f"sentiment.quality.{name}")


def _sentiment_state_in(s: SentimentModel, raw: dict[str, Json]) -> None:
    words = _obj(raw["words"], "sentiment.words")
    buckets = _array_in(words["buckets"], "sentiment.words.buckets", "<u8", ndim=1).tolist()
    counts = _array_in(words["counts"], "sentiment.words.counts", "<u8", ndim=2)
    if counts.shape != (len(buckets), len(CLASSES)):
        raise _Bad(f"sentiment.words.counts: shape {counts.shape}, {len(buckets)} buckets")
    if len(set(buckets)) != len(buckets) or any(b >= s.n_features for b in buckets):
        raise _Bad(f"sentiment.words.buckets: duplicates or buckets >= {s.n_features}")
    totals = [_int(t, "sentiment.words.totals")
              for t in _list(words["totals"], "sentiment.words.totals")]
    if len(totals) != len(CLASSES):
        raise _Bad(f"sentiment.words.totals: {len(totals)} classes, expected {len(CLASSES)}")
    stacker = _obj(raw["stacker"], "sentiment.stacker")
    mean = _array_in(stacker["mean"], "sentiment.stacker.mean", "<f8", ndim=2)
    cov = _array_in(stacker["cov"], "sentiment.stacker.cov", "<f8", ndim=2)
    if mean.shape != s.stacker.mean.shape or cov.shape != s.stacker.cov.shape:
        raise _Bad(f"sentiment.stacker: shapes {mean.shape} {cov.shape}, the model has "
                   f"{s.stacker.mean.shape} {s.stacker.cov.shape}")
    s.stacker.restore(mean, cov, _int(stacker["n"], "sentiment.stacker.n"))
    s.words.restore(dict(zip(buckets, counts.tolist(), strict=True)), totals)


def _posts_in(p: PostEngagementModel, raw: dict[str, Json]) -> None:
    p.n = _int(raw["n"], "posts.n")
    p.version = _int(raw["version"], "posts.version")
    _blr_in(p.regressor, _obj(raw["regressor"], "posts.regressor"))
    _mean_in(p.mae, raw["mae"], "posts.mae")


def _creatives_in(c: CreativeClickModel, raw: dict[str, Json]) -> None:
    c.n = _int(raw["n"], "creatives.n")
    c.version = _int(raw["version"], "creatives.version")
    _logreg_in(c.classifier, raw["classifier"], "creatives.classifier")
    _mean_in(c.log_loss, raw["log_loss"], "creatives.log_loss")
    cms = _list(raw["roc_auc"], "creatives.roc_auc")
    if len(cms) != len(c.roc_auc.cms):
        raise _Bad(f"creatives.roc_auc: {len(cms)} thresholds, the model has "
                   f"{len(c.roc_auc.cms)}")
    for i, (cm, state) in enumerate(zip(c.roc_auc.cms, cms, strict=True)):
        _cm_in(cm, state, f"creatives.roc_auc[{i}]")


def _logreg_in(clf: Any, raw: Json, what: str) -> None:
    _check_logreg(clf)
    raw = _obj(raw, what)
    clf.intercept = _float(raw["intercept"], f"{what}.intercept")
    clf.optimizer.n_iterations = _int(raw["n_iterations"], f"{what}.n_iterations")
    weights = _obj(raw["weights"], f"{what}.weights")
    names = _strs(weights["names"], f"{what}.weights.names")
    values = _array_in(weights["values"], f"{what}.weights.values", "<f8", ndim=1)
    if len(values) != len(names):
        raise _Bad(f"{what}.weights: {len(names)} names, {len(values)} values")
    clf._weights.update(dict(zip(names, values.tolist(), strict=True)))


def _blr_in(r: Any, raw: dict[str, Json]) -> None:
    _check_blr(r)
    what = "posts.regressor"
    features = _strs(raw["features"], f"{what}.features")
    cap = _int(raw["cap"], f"{what}.cap")
    if len(features) > cap:
        raise _Bad(f"{what}: {len(features)} features, capacity {cap}")
    ss = _array_in(raw["ss"], f"{what}.ss", "<f8", ndim=2)
    # The covariance is updated in place by BLAS (dger) only when Fortran-ordered, as River
    # allocates it.
    ss_inv = np.asfortranarray(_array_in(raw["ss_inv"], f"{what}.ss_inv", "<f8", ndim=2))
    eta = _array_in(raw["eta"], f"{what}.eta", "<f8", ndim=1)
    m = _array_in(raw["m"], f"{what}.m", "<f8", ndim=1)
    m_dirty = raw["m_dirty"]
    if not isinstance(m_dirty, bool):
        raise _Bad(f"{what}.m_dirty: expected a boolean")
    if ss.shape != (cap, cap) or ss_inv.shape != (cap, cap) or eta.shape != (cap,):
        raise _Bad(f"{what}: array shapes {ss.shape} {ss_inv.shape} {eta.shape} do not fit "
                   f"capacity {cap}")
    if features and not m_dirty and m.shape != (cap,):
        raise _Bad(f"{what}: the posterior mean has shape {m.shape}, capacity {cap}")
    r._idx = {f: i for i, f in enumerate(features)}
    r._cap = cap
    r._ss_arr = ss
    r._ss_inv_arr = ss_inv
    r._eta_arr = eta
    r._m_arr = m
    r._m_dirty = m_dirty


def _mean_in(metric: Any, raw: Json, what: str) -> None:
    raw = _obj(raw, what)
    mean = metric._mean
    if type(mean) is not stats.Mean:
        raise TypeError(f"model snapshots cannot import {metric!r}")
    mean.n = _float(raw["n"], f"{what}.n")
    if not mean.n >= 0:  # a sum of weights; below zero the next update can divide by zero
        raise _Bad(f"{what}.n: expected a sum of weights >= 0")
    mean._mean = _float(raw["mean"], f"{what}.mean")


def _cm_in(cm: Any, raw: Json, what: str) -> None:
    """Fills a freshly constructed confusion matrix (its defaultdicts come from River)."""
    raw = _obj(raw, what)
    cm.n_samples = _int(raw["n_samples"], f"{what}.n_samples")
    cm.total_weight = _num(raw["total_weight"], f"{what}.total_weight")
    cm._total_true_positives = _num(raw["total_true_positives"],
                                    f"{what}.total_true_positives")
    _cells_in(cm.sum_row, raw["sum_row"], f"{what}.sum_row")
    _cells_in(cm.sum_col, raw["sum_col"], f"{what}.sum_col")
    for item in _list(raw["data"], f"{what}.data"):
        y_true, row = _pair(item, f"{what}.data")
        _cells_in(cm.data[_label(y_true, f"{what}.data")], row, f"{what}.data")


def _cells_in(cells: dict[Any, Any], raw: Json, what: str) -> None:
    for item in _list(raw, what):
        label, value = _pair(item, what)
        cells[_label(label, what)] = _num(value, what)


# --- typed reading of the document ----------------------------------------------------------


def _obj(value: Json, what: str) -> dict[str, Json]:
    if not isinstance(value, dict):
        raise _Bad(f"{what}: expected an object")
    return value


def _list(value: Json, what: str) -> list[Json]:
    if not isinstance(value, list):
        raise _Bad(f"{what}: expected a list")
    return value


def _pair(value: Json, what: str) -> tuple[Json, Json]:
    items = _list(value, what)
    if len(items) != 2:
        raise _Bad(f"{what}: expected [key, value] pairs")
    return items[0], items[1]


def _str(value: Json, what: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{what}: expected a string")
    return value


def _strs(value: Json, what: str) -> list[str]:
    names = [_str(v, what) for v in _list(value, what)]
    if len(set(names)) != len(names):
        raise _Bad(f"{what}: duplicate names")
    return names


def _label(value: Json, what: str) -> str | bool:
    if not isinstance(value, str | bool):
        raise _Bad(f"{what}: expected a string or boolean label")
    return value


def _int(value: Json, what: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _Bad(f"{what}: expected an integer >= {low}")
    return value


def _float(value: Json, what: str) -> float:
    return float(_num(value, what))


def _num(value: Json, what: str) -> int | float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _NON_FINITE:
        return float(value)
    raise _Bad(f"{what}: expected a number")


def _array_in(value: Json, what: str, dtype: str, ndim: int) -> np.ndarray[Any, Any]:
    raw = _obj(value, what)
    if raw["dtype"] != dtype:
        raise _Bad(f"{what}: expected dtype {dtype}")
    shape = tuple(_int(n, f"{what}.shape") for n in _list(raw["shape"], f"{what}.shape"))
    if len(shape) != ndim:
        raise _Bad(f"{what}: expected {ndim} dimensions")
    data = base64.b64decode(_str(raw["data"], f"{what}.data"), validate=True)
    if len(data) != math.prod(shape) * _DTYPES[dtype].itemsize:
        raise _Bad(f"{what}: {len(data)} bytes do not fit shape {shape}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(_DTYPES[dtype])


_DECODERS: Final[dict[int, Callable[[Json], tuple[Trainer, int]]]] = {
    1: _decode_v1, 2: _decode_v2}
