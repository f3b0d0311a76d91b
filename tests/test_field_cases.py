"""The diagnosis on the field-case corpus: real trainings reproducing public
threads and issues where a Keras model's loss or accuracy stayed flat, with
their healthy twins (tests/field_cases).

The whole corpus is trained once (two processes), with StagnationCallback and
keras.callbacks.TensorBoard on the same log_dir, then scored twice: from the
callback's data, and from what Keras's callback alone wrote (a copy of each
run without our folder). CI fails when a score drops below its floor
(field_cases/score.py FLOORS), when a report computes class statistics for
labels that are no classes, or when a report states a number the logs
contradict.

Set TB_STAGNATION_CORPUS_LOGDIR to a folder that `python -m field_cases.score
--train` filled to score saved logs instead of training again.
"""

from __future__ import annotations

import os

import pytest
from field_cases import score
from field_cases.corpus import all_cases
from field_cases.evidence import contradictions

pytestmark = pytest.mark.slow

CASES = all_cases()


@pytest.fixture(scope="module")
def corpus_logdir(tmp_path_factory):
    import tensorflow  # noqa: F401 - the scenarios train: fail loudly without it

    saved = os.environ.get("TB_STAGNATION_CORPUS_LOGDIR")
    if saved:
        return saved
    root = str(tmp_path_factory.mktemp("field_cases"))
    trained = score.train_all(root, CASES, jobs=2)
    failed = {name: summary["error"] for name, summary in trained.items() if "error" in summary}
    assert not failed, f"field cases failed to train: {failed}"
    return root


@pytest.fixture(scope="module")
def scores(corpus_logdir):
    result = score.score_all(corpus_logdir, CASES)
    score.print_scores(result, CASES)  # shown with pytest -s, and in CI's log on failure
    return result


def test_corpus_is_large_and_varied_enough():
    stalled = [case for case in CASES if case.stalled]
    twins = [case for case in CASES if case.twin_of]
    assert len(stalled) >= 40, len(stalled)
    assert len(twins) >= 12, len(twins)
    names = {case.name for case in CASES}
    assert all(case.twin_of in names for case in twins)
    assert all(case.url.startswith(("http://", "https://")) for case in CASES)


def test_scores_do_not_drop_below_their_floors(scores):
    failures = score.below_floor(scores)
    assert not failures, "; ".join(failures)


def test_no_false_alarm_on_a_healthy_twin(scores):
    alarms = [s.case for s in scores["callback"] if s.false_alarm]
    assert not alarms, alarms


@pytest.mark.parametrize("source", score.SOURCES)
def test_every_report_agrees_with_the_logs(corpus_logdir, source):
    read = score.read_source(corpus_logdir, source, CASES)
    assert set(read) == {case.name for case in CASES}
    problems = {}
    for name, (report, run) in read.items():
        found = contradictions(report, run)
        if found:
            problems[name] = found
    assert not problems, problems


def test_the_evidence_check_catches_what_the_logs_contradict():
    from analysis_helpers import card, make_run

    from tb_stagnation.analysis.report import analyze_run

    run = make_run([0.6931] * 8, acc=[0.5] * 8, lr=1e-7, counts=[5, 5], model_card=card(width=2))
    report = analyze_run(run)
    assert contradictions(report, run) == []
    forged = dict(report, stalled_epochs=report["stalled_epochs"] + [99])
    forged["findings"] = [
        dict(report["findings"][0], evidence="In epochs 0-7 the learning rate is 0.01."),
        dict(report["findings"][0], evidence="The loss is 0.2 at epoch 3; accuracy is exactly 0.9"),
    ]
    found = contradictions(forged, run)
    assert any("stalled epoch 99" in problem for problem in found)
    assert any("learning rate 0.01" in problem for problem in found)
    assert any("loss 0.2 at epoch 3" in problem for problem in found)
    assert any("accuracy 0.9" in problem for problem in found)
    regression = make_run([1.0] * 8, model_card=card(loss="mse", width=1, task="regression"))
    claim = dict(analyze_run(regression))
    claim["findings"] = [dict(forged["findings"][0], evidence="All labels are class 1 (of 2).")]
    assert any("no classes" in problem for problem in contradictions(claim, regression))
