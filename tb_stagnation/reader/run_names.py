"""Groups TensorBoard's runs into logical runs, one per callback `log_dir`.

TensorBoard names a run by its folder relative to the logdir: our callback's
`D/stagnation` and Keras's `D/train` and `D/validation` are three runs of one
training job `D`, which is what the user named and what we report.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from tb_stagnation.summary import tags

ROLE_STAGNATION = tags.RUN_SUBDIR
ROLE_TRAIN = tags.KERAS_TRAIN_SUBDIR
ROLE_VALIDATION = tags.KERAS_VALIDATION_SUBDIR
_ROLES = (ROLE_STAGNATION, ROLE_TRAIN, ROLE_VALIDATION)
# A run of another tool's scalars in one folder of its own (no train/ folder).
ROLE_SCALARS = "scalars"
# Folders that other tools (TensorFlow's custom-loop tutorials) put beside a
# `train` folder for the held-out curves.
VALIDATION_FOLDERS = frozenset({"test", "val", "valid", "eval"})

# The name of the logical run whose log_dir is the logdir itself.
ROOT_RUN = "."
# TensorBoard names a run by its folder relative to the logdir, joined with the
# separator of the machine that runs it: `D\train` on Windows. On Linux a
# backslash is an ordinary character of a folder name (`back\slash/train` is
# run `back\slash`), so it is folded only where it separates folders.
BACKSLASH_SEPARATES = os.sep == "\\"


@dataclass
class LogicalRun:
    """The TensorBoard runs that make up one logical run."""

    name: str
    members: dict[str, str] = field(default_factory=dict)  # role -> TensorBoard run name

    def member(self, role: str) -> str | None:
        return self.members.get(role)


def _parent_and_folder(tensorboard_run: str) -> tuple[str, str]:
    """("a/b/train") -> ("a/b", "train"); ("train") -> ("", "train")."""
    if BACKSLASH_SEPARATES:
        tensorboard_run = tensorboard_run.replace("\\", "/")
    parent, _, last = tensorboard_run.rpartition("/")
    return parent, last


def split_run_name(tensorboard_run: str) -> tuple[str, str] | None:
    """("D/train") -> ("D", "train"); None for runs that are none of ours."""
    parent, last = _parent_and_folder(tensorboard_run)
    if last not in _ROLES:
        return None
    return (parent or ROOT_RUN, last)


def group_runs(tensorboard_runs: Iterable[str]) -> dict[str, LogicalRun]:
    """Logical run name -> LogicalRun, for every run that has a known role."""
    grouped: dict[str, LogicalRun] = {}
    for tensorboard_run in tensorboard_runs:
        split = split_run_name(tensorboard_run)
        if split is None:
            continue
        name, role = split
        grouped.setdefault(name, LogicalRun(name)).members[role] = tensorboard_run
    return grouped


def ungrouped_runs(
    tensorboard_runs: Iterable[str], grouped: dict[str, LogicalRun]
) -> dict[str, LogicalRun]:
    """Logical runs for the TensorBoard runs `group_runs` left out: each its own
    run (role ROLE_SCALARS), except a `test`/`val`/`eval` folder beside a
    grouped `train` folder, which becomes that run's validation member (added
    to `grouped` in place)."""
    taken = {member for logical in grouped.values() for member in logical.members.values()}
    single: dict[str, LogicalRun] = {}
    for tensorboard_run in tensorboard_runs:
        if tensorboard_run in taken:
            continue
        parent, last = _parent_and_folder(tensorboard_run)
        sibling = grouped.get(parent or ROOT_RUN)
        if (
            last in VALIDATION_FOLDERS
            and sibling is not None
            and ROLE_TRAIN in sibling.members
            and ROLE_VALIDATION not in sibling.members
        ):
            sibling.members[ROLE_VALIDATION] = tensorboard_run
            continue
        single[tensorboard_run] = LogicalRun(tensorboard_run, {ROLE_SCALARS: tensorboard_run})
    return single
