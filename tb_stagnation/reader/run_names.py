"""Groups TensorBoard's runs into logical runs, one per callback `log_dir`.

TensorBoard names a run by its folder relative to the logdir: our callback's
`D/stagnation` and Keras's `D/train` and `D/validation` are three runs of one
training job `D`, which is what the user named and what we report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tb_stagnation.summary import tags

ROLE_STAGNATION = tags.RUN_SUBDIR
ROLE_TRAIN = tags.KERAS_TRAIN_SUBDIR
ROLE_VALIDATION = tags.KERAS_VALIDATION_SUBDIR
_ROLES = (ROLE_STAGNATION, ROLE_TRAIN, ROLE_VALIDATION)

# The name of the logical run whose log_dir is the logdir itself.
ROOT_RUN = "."


@dataclass
class LogicalRun:
    """The TensorBoard runs that make up one logical run."""

    name: str
    members: dict[str, str] = field(default_factory=dict)  # role -> TensorBoard run name

    def member(self, role: str) -> str | None:
        return self.members.get(role)


def split_run_name(tensorboard_run: str) -> tuple[str, str] | None:
    """("D/train") -> ("D", "train"); None for runs that are none of ours."""
    parent, _, last = tensorboard_run.replace("\\", "/").rpartition("/")
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
