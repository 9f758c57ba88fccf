# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Scores, the JSON documents, the console table and the regression gate.

Scores (the published harness's definitions where it has them):

* Quality = points / max_points x 100, PASS 2, PARTIAL 1, FAIL 0.
* Responsiveness (ours): the mean over every turn of the run of a turn score from its latency
  L: 100 when L <= 1 s, 0 when L >= 60 s, and 100 x (1 - ln(L / 1 s) / ln(60)) between (so 2 s
  scores 83, 5 s 61, 15 s 34, 30 s 17). A turn that got no answer (HTTP error, timeout, broken
  answer) scores 0.
* Deployability = 0.7 x Quality + 0.3 x Responsiveness.
* Decode tok/s: completion tokens after the first over the time from the first to the last
  streamed token, over every answered turn; effective tok/s: completion tokens over the turns'
  whole latency (prefill included); token efficiency: points per 1,000 completion tokens.
"""
from __future__ import annotations

import json
import math
import os
import re
import statistics

from .checks import PARTIAL, PASS, POINTS, snip
from .errors import EvalInputError

FORMAT = "dgxspark.cluster/eval/1"
CONCURRENCY_FORMAT = "dgxspark.cluster/eval-concurrency/1"
SCORES = ("quality", "responsiveness", "deployability")
FULL_MS = 1000.0   # a turn this fast or faster scores 100
ZERO_MS = 60000.0  # a turn this slow or slower scores 0
STARS = ((90, 5, "excellent"), (75, 4, "good"), (60, 3, "usable"), (40, 2, "weak"),
         (20, 1, "poor"), (0, 0, "failing"))
LAB_NOTE = ("lab run: the served model is the simulated lab's tiny random-weight model, whose "
            "answers are noise; its scores are near zero and say nothing about a real model "
            "(this run checks the eval's mechanics and JSON).")
RUN_FILE = re.compile(r"^eval-\d{8}T\d{6}Z\.json$")


def turn_score(latency_ms):
    if latency_ms is None:
        return 0.0
    if latency_ms <= FULL_MS:
        return 100.0
    if latency_ms >= ZERO_MS:
        return 0.0
    return 100.0 * (1 - math.log(latency_ms / FULL_MS) / math.log(ZERO_MS / FULL_MS))


def percentile(values, fraction):
    """Linear interpolation between the closest ranks (None for no values)."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    rank = fraction * (len(values) - 1)
    low = int(math.floor(rank))
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def _round(value, digits=1):
    return None if value is None else round(value, digits)


def stars_and_rating(deployability):
    for floor, stars, rating in STARS:
        if deployability >= floor:
            return stars, rating
    return 0, "failing"


def _answered(outcomes):
    return [reply for dummy, replies in outcomes for reply in replies if not reply.error]


def aggregate(outcomes):
    """The ``aggregate`` block of a run: outcomes are [(record, replies)]."""
    records = [record for record, dummy in outcomes]
    replies = [reply for dummy, rs in outcomes for reply in rs]
    answered = _answered(outcomes)
    points = sum(r["points"] for r in records)
    max_points = POINTS[PASS] * len(records)
    quality = 100.0 * points / max_points if max_points else 0.0
    responsiveness = (sum(0.0 if r.error else turn_score(r.latency_ms) for r in replies)
                      / len(replies)) if replies else 0.0
    deployability = 0.7 * round(quality, 1) + 0.3 * round(responsiveness, 1)
    completion = sum(r["completion_tokens"] for r in records)
    decoding = [r for r in answered if r.completion_tokens > 1 and r.decode_s]
    decode_s = sum(r.decode_s for r in decoding)
    latency_s = sum(r.latency_ms for r in answered) / 1000.0
    stars, rating = stars_and_rating(round(deployability, 1))
    categories = {}
    for record in records:
        row = categories.setdefault(record["category"], {"scenarios": 0, "passed": 0,
                                                         "partial": 0, "failed": 0,
                                                         "points": 0, "max_points": 0})
        row["scenarios"] += 1
        row[{"PASS": "passed", "PARTIAL": "partial"}.get(record["verdict"], "failed")] += 1
        row["points"] += record["points"]
        row["max_points"] += POINTS[PASS]
    for row in categories.values():
        row["quality"] = round(100.0 * row["points"] / row["max_points"], 1)
    return {
        "scenarios": len(records),
        "passed": sum(1 for r in records if r["verdict"] == PASS),
        "partial": sum(1 for r in records if r["verdict"] == PARTIAL),
        "failed": sum(1 for r in records if r["verdict"] not in (PASS, PARTIAL)),
        "points": points, "max_points": max_points,
        "quality": round(quality, 1),
        "median_turn_latency_ms": _round(statistics.median([r.latency_ms for r in answered])
                                         if answered else None),
        "responsiveness": round(responsiveness, 1),
        "deployability": round(deployability, 1),
        "total_tokens": sum(r["total_tokens"] for r in records),
        "completion_tokens": completion,
        "token_efficiency": round(points / (completion / 1000.0), 2) if completion else None,
        "tok_s_decode": _round(sum(r.completion_tokens - 1 for r in decoding) / decode_s
                               if decode_s > 0 else None),
        "tok_s_effective": _round(sum(r.completion_tokens for r in answered) / latency_s
                                  if latency_s > 0 else None),
        "stars": stars, "rating": rating,
        "categories": dict(sorted(categories.items())),
    }


def meta(model, endpoint, utc, settings, scenario_set, label="", note="", lab=False,
         context=None, max_model_len=None):
    notes = ([LAB_NOTE] if lab else []) + ([note] if note else [])
    return {
        "label": label or model, "model": model, "endpoint": endpoint, "utc": utc,
        "note": " ".join(notes), "max_tokens": settings.max_tokens,
        "thinking": settings.thinking, "wall_timeout": settings.wall_timeout,
        "format": FORMAT, "lab": bool(lab), "temperature": settings.temperature,
        "max_model_len": max_model_len,
        "scenario_set": {"scenarios": len(scenario_set.scenarios),
                         "categories": scenario_set.categories(),
                         "sources": list(scenario_set.sources)},
        "context": context or {},
    }


def document(outcomes, run_meta):
    return {"meta": run_meta, "aggregate": aggregate(outcomes),
            "scenarios": [record for record, dummy in outcomes]}


def level_row(level, outcomes, wall_s):
    """One row of the concurrency sweep (the published table's columns)."""
    summary = aggregate(outcomes)
    answered = _answered(outcomes)
    records = [record for record, dummy in outcomes]
    return {
        "concurrency": level, "score": summary["deployability"],
        "passed": summary["passed"], "partial": summary["partial"], "failed": summary["failed"],
        "wall_s": round(wall_s, 2),
        "agg_out_tok_s": round(sum(r["completion_tokens"] for r in records) / wall_s, 1)
        if wall_s > 0 else None,
        "agg_total_tok_s": round(sum(r["total_tokens"] for r in records) / wall_s, 1)
        if wall_s > 0 else None,
        "quality": summary["quality"],
        "p50_turn_ms": _round(percentile([r.latency_ms for r in answered], 0.5)),
        "p95_turn_ms": _round(percentile([r.latency_ms for r in answered], 0.95)),
        "p50_ttft_ms": _round(percentile([r.ttft_ms for r in answered], 0.5)),
    }


def concurrency_document(run_meta, scenario_ids, rows):
    sweep_meta = dict(run_meta, format=CONCURRENCY_FORMAT, scenarios=list(scenario_ids),
                      levels=[row["concurrency"] for row in rows])
    sweep_meta.pop("scenario_set", None)
    return {"meta": sweep_meta, "levels": rows}


# --- The console table -------------------------------------------------------------------------

def _num(value, fmt="%.1f"):
    return "-" if value is None else fmt % value


def table(doc, sweep=None, gate_result=None):
    """The run as lines of text for the console."""
    m, a = doc["meta"], doc["aggregate"]
    lines = ["Eval of %s at %s: %d scenarios, thinking %s, max_tokens %d, %s" % (
        m["model"], m["endpoint"], a["scenarios"], "on" if m["thinking"] else "off",
        m["max_tokens"], m["utc"])]
    if m.get("note"):
        lines.append("NOTE: " + m["note"])
    width = max([len(r["id"]) for r in doc["scenarios"]] + [8])
    row = "%-" + str(width) + "s  %-17s %-7s %3s %5s %7s  %s"
    lines.append(row % ("SCENARIO", "CATEGORY", "VERDICT", "PTS", "TURNS", "WALL S", "REASON"))
    for r in doc["scenarios"]:
        lines.append(row % (r["id"], r["category"], r["verdict"], r["points"], r["turns"],
                            "%.1f" % r["wall_s"], snip(r["reason"], 90)))
    lines.append("%-17s %4s %7s %4s %7s" % ("CATEGORY", "PASS", "PARTIAL", "FAIL", "QUALITY"))
    for name, c in a["categories"].items():
        lines.append("%-17s %4d %7d %4d %7.1f" % (name, c["passed"], c["partial"], c["failed"],
                                                  c["quality"]))
    lines.append("Quality %.1f | Responsiveness %.1f | Deployability %.1f | %s %s" % (
        a["quality"], a["responsiveness"], a["deployability"],
        u"\u2605" * a["stars"] + u"\u2606" * (5 - a["stars"]), a["rating"]))
    lines.append(
        "%d passed, %d partial, %d failed: %d/%d points; median turn %s ms; decode %s tok/s, "
        "effective %s tok/s; %s points per 1K completion tokens; %d tokens" % (
            a["passed"], a["partial"], a["failed"], a["points"], a["max_points"],
            _num(a["median_turn_latency_ms"], "%.0f"), _num(a["tok_s_decode"]),
            _num(a["tok_s_effective"]), _num(a["token_efficiency"], "%.2f"), a["total_tokens"]))
    if sweep:
        lines.append("Concurrency sweep (%d scenarios):" % len(sweep["meta"]["scenarios"]))
        lines.append("| C | Score | Pass | Partial | Fail | Wall s | Agg out tok/s | "
                     "Agg total tok/s | Quality | p50 turn ms | p95 turn ms | p50 TTFT ms |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in sweep["levels"]:
            lines.append("| %d | %.1f | %d | %d | %d | %.1f | %s | %s | %.1f | %s | %s | %s |" % (
                r["concurrency"], r["score"], r["passed"], r["partial"], r["failed"], r["wall_s"],
                _num(r["agg_out_tok_s"]), _num(r["agg_total_tok_s"]), r["quality"],
                _num(r["p50_turn_ms"], "%.0f"), _num(r["p95_turn_ms"], "%.0f"),
                _num(r["p50_ttft_ms"], "%.0f")))
    if gate_result and gate_result.get("minimums"):
        lines.append("Gate: %s" % ("passed" if gate_result["passed"] else gate_result["msg"]))
    return lines


# --- The regression gate -----------------------------------------------------------------------

def check_minimums(minimums):
    """The minimum scores as {score: float}; an ``EvalInputError`` names what is wrong."""
    if not isinstance(minimums, dict):
        raise EvalInputError("min_scores", minimums, "must be a mapping",
                             "write {quality: 80, deployability: 75}")
    out = {}
    for key, value in minimums.items():
        if key not in SCORES:
            raise EvalInputError("min_scores", minimums, "%r is not a score" % key,
                                 "use %s" % ", ".join(SCORES))
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if isinstance(value, bool) or number is None or not 0 <= number <= 100:
            raise EvalInputError("min_scores", minimums, "%s=%r is not a number from 0 to 100"
                                 % (key, value), "give each minimum as a score from 0 to 100")
        out[key] = number
    return out


def _load_run(path):
    with open(path, encoding="utf-8") as handle:
        doc = json.load(handle)
    if not isinstance(doc, dict) or not isinstance(doc.get("meta"), dict) \
            or not isinstance(doc.get("scenarios"), list):
        raise ValueError("no meta / scenarios")
    return doc


def find_baseline(path, model, lab):
    """(path, document) of the last saved run to compare with, or (None, None).

    ``path`` is a run's JSON file, or a results directory: then the newest ``eval-<UTC>.json``
    of the same served model, lab or not alike."""
    if not path:
        return None, None
    if os.path.isfile(path):
        try:
            return path, _load_run(path)
        except (OSError, ValueError) as exc:
            raise EvalInputError("baseline", path, "is not an eval JSON document (%s)" % exc,
                                 "give a results/eval-<UTC>.json of an earlier run, or its "
                                 "directory")
    if not os.path.isdir(path):
        return None, None
    for name in sorted((n for n in os.listdir(path) if RUN_FILE.match(n)), reverse=True):
        candidate = os.path.join(path, name)
        try:
            doc = _load_run(candidate)
        except (OSError, ValueError):
            continue
        if doc["meta"].get("model") == model and bool(doc["meta"].get("lab")) == bool(lab):
            return candidate, doc
    return None, None


def regressions(doc, baseline):
    """Scenarios with fewer points than in ``baseline``: [{id, was, now, reason}]."""
    before = {r.get("id"): r for r in baseline.get("scenarios", []) if isinstance(r, dict)}
    out = []
    for record in doc["scenarios"]:
        old = before.get(record["id"])
        if old is not None and record["points"] < old.get("points", 0):
            out.append({"id": record["id"], "was": old.get("verdict"), "now": record["verdict"],
                        "reason": record["reason"]})
    return out


def _listing(entries, limit=12):
    shown = ["%s (%s)" % (e[0], snip(e[1], 100)) for e in entries[:limit]]
    if len(entries) > limit:
        shown.append("+%d more" % (len(entries) - limit))
    return ", ".join(shown)


def gate(doc, minimums, baseline=None, baseline_path=None):
    """Whether the run meets ``minimums``; the scenarios that regressed against ``baseline``."""
    scores = doc["aggregate"]
    below = [{"score": k, "value": scores[k], "minimum": v} for k, v in sorted(minimums.items())
             if scores[k] < v]
    regressed = regressions(doc, baseline) if baseline else []
    result = {"passed": not below, "minimums": minimums, "below": below, "regressed": regressed,
              "baseline": baseline_path, "msg": ""}
    if not below:
        return result
    parts = ["scores below the minimum: %s." % ", ".join(
        "%s %.1f < %g" % (b["score"], b["value"], b["minimum"]) for b in below)]
    failing = _listing([(r["id"], "%s: %s" % (r["verdict"], r["reason"]))
                        for r in doc["scenarios"] if r["verdict"] != PASS]) or "none"
    if baseline is None:
        parts.append("No earlier run of %s to compare with; not passing now: %s." % (
            doc["meta"]["model"], failing))
    elif regressed:
        parts.append("Regressed since the last saved run (%s, %s): %s." % (
            baseline_path, baseline["meta"].get("utc", "?"), _listing(
                [(r["id"], "%s -> %s: %s" % (r["was"], r["now"], r["reason"]))
                 for r in regressed])))
    else:
        parts.append("No scenario regressed since the last saved run (%s), which scored as low; "
                     "not passing now: %s." % (baseline_path, failing))
    parts.append("Fix: read these scenarios' reasons (and transcripts with transcripts on); "
                 "lower the minimum scores only if the drop is accepted.")
    result["msg"] = " ".join(parts)
    return result
