"""Train the field-case corpus and score the diagnosis on it.

    cd tests && python -m field_cases.score --logdir /tmp/corpus --train
    cd tests && python -m field_cases.score --logdir /tmp/corpus      # re-score saved logs

Prints, for the callback's reports and for the same runs read as plain-Keras
past runs (only what `keras.callbacks.TensorBoard` wrote): stall recall, false
alarms on healthy runs, the right cause first (top-1), in the top 3, and
finding precision (every finding of every report labelled true,
true-as-a-consequence or false by the case's rules, corpus.py).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import sys
from dataclasses import dataclass, field

from field_cases.corpus import FieldCase, all_cases, keras_only_copy
from tb_stagnation.analysis.findings import CODES

SOURCES = ("callback", "keras")
CODE_TIERS = {code: info.tier for code, info in CODES.items()}

# The targets for the callback's reports (issue 12) and for plain-Keras
# runs (issue 13; recall there counts curve-visible stalls).
GOALS = {
    "callback": {
        "recall": 0.95,
        "false_alarms": 0.0,
        "top1": 0.85,
        "top3": 0.95,
        "precision": 0.95,
    },
    "keras": {"recall": 0.90, "false_alarms": 0.0, "top3": 0.90},
}
# What CI holds the corpus to (rates; false alarms are a maximum).
FLOORS = {
    # The targets themselves: the corpus meets them, and training is
    # repeatable here (two trainings of the same cases gave identical histories).
    "callback": {
        "recall": 0.95,
        "false_alarms": 0.0,
        "top1": 0.85,
        "top3": 0.95,
        "precision": 0.95,
    },
    # Plain-Keras runs: issue 13's targets (recall over curve-visible stalls).
    "keras": {"recall": 0.90, "false_alarms": 0.0, "top3": 0.90, "precision": 0.95},
}


def below_floor(scores: dict[str, list[CaseScore]]) -> list[str]:
    """Every total that fails its floor, as a sentence."""
    failures = []
    for source, floors in FLOORS.items():
        measured = totals(scores[source])
        for key, floor in floors.items():
            rate = measured[key]["rate"]
            if rate is None:
                continue
            worse = rate > floor if key == "false_alarms" else rate < floor
            if worse:
                failures.append(f"{source} {key} {rate:.3f} (floor {floor})")
    return failures


@dataclass
class CaseScore:
    case: str
    source: str
    stalled_expected: bool
    stalled_found: bool
    stall_epochs: list[int]
    codes: list[str]
    top1: bool | None  # None: the case has no root code to score
    top3: bool | None
    labels: list[str]  # per finding: "true", "consequence", "false"
    false_reasons: list[str] = field(default_factory=list)
    onset_ok: bool | None = None
    # False for a stall Keras's curves cannot show (FieldCase.curve_hidden).
    curve_visible: bool = True

    @property
    def false_alarm(self) -> bool:
        return not self.stalled_expected and self.stalled_found


def _explained_by_root(finding: dict, report: dict, roots: set[str]) -> bool:
    """Whether the finding's `explained_by` chain (A explained by B, B by C...)
    reaches one of the case's root codes through settings, mechanisms and symptoms
    (tiers 1-3; a data or configuration cause is never anyone's consequence)."""
    by_code = {f["code"]: f for f in report.get("findings", [])}
    seen = set()
    cause = finding.get("explained_by")
    while cause and cause not in seen:
        if cause in roots:
            return True
        seen.add(cause)
        parent = by_code.get(cause)
        if parent is None or CODE_TIERS.get(cause, 0) < 1:
            return False
        cause = parent.get("explained_by")
    return False


def label_findings(case: FieldCase, report: dict, source: str) -> tuple[list[str], list[str]]:
    labels, reasons = [], []
    roots = set(case.root) | (set(case.keras_root) if source == "keras" else set())
    for finding in report.get("findings", []):
        code = finding["code"]
        text = f"{finding.get('evidence', '')} {finding.get('fix', '')}"
        bad_text = [p for p in case.false_text if re.search(p, text, re.IGNORECASE)]
        if bad_text:
            labels.append("false")
            reasons.append(f"{code}: matches false statement /{bad_text[0]}/")
        elif code in roots:
            labels.append("true")
        elif code in case.consequences:
            labels.append("consequence")
        elif code in case.also_true:
            labels.append("true")
        elif CODE_TIERS.get(code, 0) >= 1 and _explained_by_root(finding, report, roots):
            # A setting, mechanism or symptom the report itself marks as a consequence of
            # the case's true root: a true sentence when its numbers are (the
            # evidence test checks them against the logs).
            labels.append("consequence")
        elif code == "no_progress" and case.stalled:
            labels.append("true")
        else:
            labels.append("false")
            reasons.append(f"{code}: not a cause of this run")
    return labels, reasons


def score_report(case: FieldCase, report: dict, source: str) -> CaseScore:
    codes = [f["code"] for f in report.get("findings", [])]
    stalled = list(report.get("stalled_epochs", []))
    roots = case.root if source == "callback" else case.keras_root
    top1 = top3 = None
    if roots:
        top1 = bool(codes) and codes[0] in roots
        top3 = any(code in roots for code in codes[:3])
    labels, reasons = label_findings(case, report, source)
    onset_ok = None
    if case.stalled and stalled and case.stall_from is not None:
        onset_ok = min(stalled) <= case.stall_from + case.stall_slack
    return CaseScore(
        case=case.name,
        source=source,
        stalled_expected=case.stalled,
        stalled_found=bool(stalled) or not report.get("healthy", True),
        stall_epochs=stalled,
        codes=codes,
        top1=top1,
        top3=top3,
        labels=labels,
        false_reasons=reasons,
        onset_ok=onset_ok,
        curve_visible=not case.curve_hidden,
    )


def _ratio(hits: int, total: int) -> dict:
    return {"hits": hits, "total": total, "rate": (hits / total) if total else None}


def totals(scores: list[CaseScore]) -> dict:
    stalled = [s for s in scores if s.stalled_expected]
    healthy = [s for s in scores if not s.stalled_expected]
    # Plain-Keras recall counts what Keras's curves can show (issue 13).
    visible = [s for s in stalled if s.curve_visible or s.source == "callback"]
    ranked = [s for s in scores if s.top1 is not None]
    labels = [label for s in scores for label in s.labels]
    return {
        "recall": _ratio(sum(s.stalled_found for s in visible), len(visible)),
        "recall_all": _ratio(sum(s.stalled_found for s in stalled), len(stalled)),
        "false_alarms": _ratio(sum(s.false_alarm for s in healthy), len(healthy)),
        "top1": _ratio(sum(bool(s.top1) for s in ranked), len(ranked)),
        "top3": _ratio(sum(bool(s.top3) for s in ranked), len(ranked)),
        "precision": _ratio(sum(label != "false" for label in labels), len(labels)),
    }


def read_source(logdir: str, source: str, cases: list[FieldCase]) -> dict[str, tuple]:
    """Per case: (report, RunData) of its run read as `source` ("callback": the
    whole log_dir; "keras": Keras's folders alone). One reader for all runs."""
    from tb_stagnation.analysis.report import analyze_run
    from tb_stagnation.reader.logdir import open_logdir

    root = os.path.join(logdir, source)
    for case in cases:
        run_dir = os.path.join(logdir, "callback", case.name)
        if source == "keras" and os.path.isdir(run_dir):
            keras_only_copy(run_dir, os.path.join(root, case.name))
    wanted = {case.name for case in cases}
    with open_logdir(root) as logs:
        names = [name for name in logs.list_runs() if name in wanted]
        runs = logs.read_runs(names)
    return {run.name: (analyze_run(run), run) for run in runs}


def score_all(logdir: str, cases: list[FieldCase]) -> dict[str, list[CaseScore]]:
    out: dict[str, list[CaseScore]] = {source: [] for source in SOURCES}
    empty = {"findings": [], "stalled_epochs": [], "healthy": True}
    for source in SOURCES:
        read = read_source(logdir, source, cases)
        for case in cases:
            if case.name not in read:
                print(f"missing: {case.name} ({source})", file=sys.stderr)
                report = empty
            else:
                report = read[case.name][0]
            out[source].append(score_report(case, report, source))
    return out


def _train_one(args: tuple[str, str]) -> tuple[str, dict]:
    import warnings

    from field_cases.corpus import train

    name, logdir = args
    case = {c.name: c for c in all_cases()}[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            summary = train(case, os.path.join(logdir, "callback", name))
        except Exception as error:  # report it and keep training the others
            summary = {"error": f"{type(error).__name__}: {error}"}
    return name, summary


def train_all(logdir: str, cases: list[FieldCase], jobs: int) -> dict[str, dict]:
    names = [(case.name, logdir) for case in cases]
    if jobs <= 1:
        results = [_train_one(item) for item in names]
    else:
        context = multiprocessing.get_context("spawn")
        with context.Pool(jobs) as pool:
            results = pool.map(_train_one, names, chunksize=1)
    return dict(results)


def _fmt(ratio: dict) -> str:
    rate = ratio["rate"]
    percent = "n/a" if rate is None else f"{100 * rate:.1f}%"
    return f"{ratio['hits']}/{ratio['total']} ({percent})"


def print_scores(scores: dict[str, list[CaseScore]], cases: list[FieldCase]) -> None:
    by_name = {case.name: case for case in cases}
    for source in SOURCES:
        print(f"\n== {source} reports")
        for s in scores[source]:
            case = by_name[s.case]
            expected = ",".join(case.root if source == "callback" else case.keras_root) or "-"
            mark = []
            if s.stalled_expected and not s.stalled_found:
                hidden = source == "keras" and not s.curve_visible
                mark.append("missed (not curve-visible)" if hidden else "MISSED STALL")
            if s.false_alarm:
                mark.append("FALSE ALARM")
            if s.top1 is False:
                mark.append("top1 wrong")
            if s.top3 is False:
                mark.append("top3 wrong")
            if s.onset_ok is False:
                mark.append("late onset")
            mark += s.false_reasons
            status = "stalled" if s.stalled_found else "healthy"
            print(
                f"  {s.case:42s} {status:8s} want={expected:34s} got={','.join(s.codes[:4]) or '-'}"
                + (f"  <- {'; '.join(mark)}" if mark else "")
            )
        t = totals(scores[source])
        if t["recall_all"] != t["recall"]:
            print(f"  recall of every stall, curve-visible or not: {_fmt(t['recall_all'])}")
        print(
            f"  recall {_fmt(t['recall'])}  false alarms {_fmt(t['false_alarms'])}  "
            f"top-1 {_fmt(t['top1'])}  top-3 {_fmt(t['top3'])}  "
            f"finding precision {_fmt(t['precision'])}"
        )
        goals = ", ".join(f"{key} {value:g}" for key, value in GOALS[source].items())
        print(f"  issue targets: {goals}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", required=True)
    parser.add_argument("--train", action="store_true", help="train the cases first")
    parser.add_argument("--cases", default=None, help="regex on case names")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print the totals as JSON")
    args = parser.parse_args(argv)
    cases = all_cases()
    if args.cases:
        cases = [case for case in cases if re.search(args.cases, case.name)]
    if args.train:
        for name, summary in train_all(args.logdir, cases, args.jobs).items():
            print(f"trained {name}: {summary}")
    scores = score_all(args.logdir, cases)
    print_scores(scores, cases)
    if args.json:
        print(json.dumps({source: totals(scores[source]) for source in SOURCES}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
