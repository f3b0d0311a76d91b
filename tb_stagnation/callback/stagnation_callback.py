"""`StagnationCallback`: records why a Keras model's loss may stop changing."""

from __future__ import annotations

import math
import os
import threading
import weakref
from typing import Any

import numpy as np

from tb_stagnation.callback._tf import import_tensorflow_and_keras, require_tensorflow_backend

tf, keras = import_tensorflow_and_keras()

# These import numpy only; the order keeps the clear ImportError above first.
from tb_stagnation.callback import distribution, epoch_stats, model_info  # noqa: E402
from tb_stagnation.callback.console import print_message, warn_at_user_code  # noqa: E402
from tb_stagnation.callback.graph_recorder import (  # noqa: E402
    MAX_REGRESSION_DIMS,
    GraphRecorder,
    LabelPlan,
    LeafSpec,
    RecorderPlan,
)
from tb_stagnation.callback.hooks import TrainingHooks, live_fit_elsewhere  # noqa: E402
from tb_stagnation.callback.lr_range_trigger import LRRangeTrigger  # noqa: E402
from tb_stagnation.callback.preflight import OVERFIT_SAMPLES, Preflight  # noqa: E402
from tb_stagnation.callback.probe import ProbeRunner  # noqa: E402
from tb_stagnation.callback.stall_stopper import StallStopper  # noqa: E402
from tb_stagnation.callback.weight_snapshot import WeightSnapshot  # noqa: E402
from tb_stagnation.compat import keras as compat_keras  # noqa: E402
from tb_stagnation.summary import tags  # noqa: E402
from tb_stagnation.summary.writer import SummaryWriteError, SummaryWriter  # noqa: E402

# Fingerprints of the last this-many training batches are kept on the device
# between two reads by the host.
_RING_SIZE = 1024

# Per run folder, the newest epoch and batch steps written to it in this
# process: a later `fit` into the same folder (a re-run notebook cell, with
# the same callback or a new one) goes on after them instead of writing over
# them. Folders first seen here are read from disk once (`_steps_on_disk`).
_WRITTEN: dict[str, list[int]] = {}
_WRITTEN_LOCK = threading.Lock()


def _version() -> str:
    from tb_stagnation import __version__

    return __version__


# `keras` is a module held in a variable, so mypy cannot resolve a base class
# through it; the base is typed Any at this boundary, as Keras is untyped.
_KerasCallback: Any = keras.callbacks.Callback


class StagnationCallback(_KerasCallback):
    """Logs what it takes to tell why loss and accuracy stop changing.

    Every epoch it writes, for TensorBoard's "Stagnation" tab and
    `tb-stagnation report`: the Keras logs, the learning rate, per-layer and
    global gradient norms measured in the real training steps, weight norms
    and update ratios, NaN/Inf gradients, input and label statistics, how many
    distinct batches the epoch trained on, dead ReLU and saturated
    sigmoid/tanh units, and how confident, varied and changing the
    predictions on a fixed probe of training samples are. Once per `fit` it
    writes a model card (layers, loss, optimizer, task). The data goes to
    `<log_dir>/stagnation/`, so it sits beside `keras.callbacks.TensorBoard`
    on the same `log_dir`.

    Dead units are ReLU/ReLU6 units never positive on the probe; saturated
    units are sigmoid/tanh (and hard or softsign) units whose pre-activation
    is beyond +-5 (DeepDiagnosis's threshold) on most probe entries.

    Inside the compiled train step it adds a few reductions per step (input
    sums, label counts, a batch fingerprint) and, every `gradient_freq`
    steps, one pass over the gradients and the inputs; everything else runs
    once per epoch on the host. Any failure of the callback itself is
    reported in one warning and never stops training.

    Under `tf.distribute` strategies the gradient statistics are those of the
    whole step (after the all-reduce over every replica). Under
    `MultiWorkerMirroredStrategy` only the chief records and writes; the
    other workers add nothing to their train step and write nothing.

    Example:

    ```python
    from tb_stagnation import StagnationCallback

    model.fit(
        x_train,
        y_train,
        epochs=20,
        validation_data=(x_val, y_val),
        callbacks=[
            StagnationCallback(log_dir="logs/run1"),
            keras.callbacks.TensorBoard(log_dir="logs/run1"),
        ],
    )
    # Then: tensorboard --logdir logs   (or: tb-stagnation report logs)
    ```

    Args:
        log_dir: the path of the directory where to save the log files, the
            same you give `keras.callbacks.TensorBoard`: a str or
            `os.PathLike` (bytes are decoded like `os.fsdecode`), `~` is
            expanded. Files go to its `stagnation/` subfolder. A later `fit`
            logging to the same folder goes on after the epochs it already
            holds (as `initial_epoch` would number them). Defaults to `"logs"`.
        update_freq: `"epoch"`, `"batch"` or an integer N. With `"batch"` or
            N, the loss of the latest training step and the global gradient
            norm of the latest measured one (see `gradient_freq`) are also
            written every N batches (`batch/loss`, `batch/grad_global_norm`,
            step = global batch index; a norm only when a new one was
            measured). Writing
            often reads the device often and slows training. Defaults to
            `"epoch"`.
        probe_size: how many of the first training samples to keep (on the
            device) as the fixed probe on which predictions and dead or
            saturated units are measured each epoch. At most 64 MB of inputs
            are kept; 0 turns the probe off. Defaults to 256.
        gradient_freq: measure the gradients, and the input spread
            (`inputs/std`, `inputs/max_abs`), every `gradient_freq` training
            steps and at the first step of every epoch: the two statistics
            that take a pass over large tensors. `gradients/steps` counts the
            measured steps. A measured step reads every gradient once: on
            small models on CPU, measuring every 8th step cost 1.5-2% more
            step time than every 32nd. 1 measures every step. Defaults to 32.
        verbose: 0 is silent, 1 prints where the logs go and a one-line
            summary per epoch. Defaults to 0.
        preflight: after the first training batch, report what cannot work
            before more time is spent: a loss that does not fit the output
            layer or the labels (binary loss on a multi-class softmax,
            categorical loss with integer labels, sparse loss with one-hot
            labels, labels outside the output's range), labels that are all
            one class, inputs of huge magnitude or zero variance, no
            trainable weights. Printed once as a `PreflightWarning` (what,
            evidence, fix) and logged, so the tab and the report show it.
            Defaults to True.
        overfit_check: also run `tb_stagnation.overfit_check` at the first
            batch: train a copy of the model (the model itself is untouched)
            on the first 20 training samples and say whether it can drive
            the loss near zero; a model that cannot has a structural
            problem. Takes a few seconds; needs `probe_size >= 20`. Defaults
            to False.
        stop_on_stall: end training (like `EarlyStopping`) once the last
            `patience` epochs are flagged as stalled, printing the stall and
            its most likely cause with the fix. Not available under
            `MultiWorkerMirroredStrategy` (only the chief analyses, and
            workers must stop together): a warning says so. Defaults to
            False.
        patience: how many epochs in a row must be stalled before
            `stop_on_stall` ends training. Defaults to 3.
        lr_range_test: at the end of the first epoch whose analysis names
            the learning rate as the top cause (`learning_rate_too_small` or
            `learning_rate_too_large`), run `tb_stagnation.lr_range_test`
            once on a copy of the model, on the first 512 training rows
            (kept on the device from the first batches; inputs and labels
            must be dense numeric tensors of a fixed shape, else a warning
            says it is skipped). The suggested rate is printed (with the
            stop message under `stop_on_stall`), checked with
            `overfit_check(fix=...)`, logged, and named in the finding's fix.
            Costs a second or two when it runs; per step, a copy of the
            batch until the rows are kept, then one comparison. Defaults to
            None: on with `stop_on_stall=True`, off otherwise; False turns
            it off.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike = "logs",
        update_freq: str | int = "epoch",
        probe_size: int = 256,
        gradient_freq: int = 32,
        verbose: int = 0,
        preflight: bool = True,
        overfit_check: bool = False,
        stop_on_stall: bool = False,
        patience: int = 3,
        lr_range_test: bool | None = None,
    ) -> None:
        super().__init__()
        require_tensorflow_backend(keras)
        self.log_dir = _check_log_dir(log_dir)
        self.update_freq = _check_update_freq(update_freq)
        if not isinstance(probe_size, (int, np.integer)) or probe_size < 0:
            raise ValueError(f"probe_size must be an integer >= 0, got {probe_size!r}")
        if not isinstance(gradient_freq, (int, np.integer)) or gradient_freq < 1:
            raise ValueError(f"gradient_freq must be an integer >= 1, got {gradient_freq!r}")
        self.probe_size = int(probe_size)
        self.gradient_freq = int(gradient_freq)
        self.verbose = int(verbose)
        # Pre-flight and stop_on_stall options (preflight.py, stall_stopper.py).
        if (
            not isinstance(patience, (int, np.integer))
            or isinstance(patience, bool)
            or patience < 1
        ):
            raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
        self.preflight = bool(preflight)
        self.overfit_check = bool(overfit_check)
        self.stop_on_stall = bool(stop_on_stall)
        self.patience = int(patience)
        if lr_range_test is not None and not isinstance(lr_range_test, (bool, np.bool_)):
            raise ValueError(f"lr_range_test must be True, False or None, got {lr_range_test!r}")
        self.lr_range_test = None if lr_range_test is None else bool(lr_range_test)
        self._writer: SummaryWriter | None = None
        self._finalizer: Any = None
        self._hooks: TrainingHooks | None = None
        # The thread of the fit being recorded, and threads whose concurrent
        # fit (on the same model, or with this same instance) is not recorded.
        self._fit_thread: Any = None
        self._ignored_threads: set[int] = set()
        self._reset_fit_state()

    # ------------------------------------------------------------ fit state

    def _reset_fit_state(self) -> None:
        self._warned = False
        # False on the non-chief workers of a multi-worker cluster (distribution.py).
        self._records_here = True
        self._layers: list = []
        self._variables: list = []  # (variable, layer index, counts globally)
        self._weights: WeightSnapshot | None = None  # the update ratio's start of epoch
        self._recorder: GraphRecorder | None = None
        self._probe: ProbeRunner | None = None
        self._outputs: list = []
        self._stats_index: int | None = None
        self._label_plan: LabelPlan | None = None
        self._previous_classes: np.ndarray | None = None
        self._distinct: epoch_stats.DistinctBatches | None = None
        self._epoch = 0
        # Added to Keras's epoch numbers, so a fit into a folder that already
        # holds epochs goes on after them (None until the first epoch begins).
        self._epoch_offset: int | None = None
        self._steps_before = (-1, -1)  # newest epoch and batch steps already in the folder
        self._run_key: str | None = None
        self._batches_in_epoch = 0
        self._drained_at = 0
        self._global_batch_start = 0
        self._last_batch_bucket = 0
        self._last_grad_step_written = -1
        # Pre-flight and stop_on_stall state of this fit.
        self._card: dict | None = None
        self._sample_weighted = False
        self._preflight: Preflight | None = None
        if self.preflight or self.overfit_check:
            self._preflight = Preflight(
                checks_enabled=self.preflight,
                overfit_samples=OVERFIT_SAMPLES if self.overfit_check else 0,
                log_dir=self.log_dir,
            )
        self._stall_stopper = StallStopper(self.patience) if self.stop_on_stall else None
        self.stopped_epoch: int | None = None
        # The LR range test (lr_range_trigger.py): it watches the stopper's
        # analysis, which then runs every epoch; without stop_on_stall a
        # stopper that never stops does the watching.
        self._lr_trigger: LRRangeTrigger | None = None
        wanted = self.lr_range_test if self.lr_range_test is not None else self.stop_on_stall
        if wanted:
            self._lr_trigger = LRRangeTrigger(self.log_dir, explicit=bool(self.lr_range_test))
            if self._stall_stopper is None:
                self._stall_stopper = StallStopper(self.patience, stops=False)
            self._stall_stopper.on_report = self._lr_on_report

    @property
    def lr_range_result(self) -> Any:
        """The `LRRangeResult` of this fit's LR range test, or None when it did not run."""
        trigger = self._lr_trigger
        return trigger.result if trigger is not None else None

    def _lr_on_report(self, model: Any, report: dict, epoch: int) -> str | None:
        """The trigger's turn after each in-training analysis; its failure is one warning."""
        trigger = self._lr_trigger
        if trigger is None:
            return None
        try:
            note = trigger.on_report(model, report, epoch)
        except Exception as error:
            trigger.done = True
            self._warn(error)
            note = None
        if trigger.write_error is not None:
            self._warn(trigger.write_error)
        if trigger.done and self._stall_stopper is not None:
            # Once per fit: a stopper that only watched stops analysing.
            self._stall_stopper.on_report = None
        return note

    def _warn(self, error: BaseException) -> None:
        """One warning per fit, naming the first failure; training goes on."""
        if self._warned:
            return
        self._warned = True
        if isinstance(error, SummaryWriteError):
            message = (
                f"StagnationCallback stopped logging: {error}. Training is not affected, "
                "and the epochs written so far stay readable."
            )
        else:
            message = (
                "StagnationCallback hit an internal error and records less from now on; "
                f"training is not affected. {type(error).__name__}: {error}"
            )
        warn_at_user_code(message, RuntimeWarning)

    def _ignores_this_thread(self) -> bool:
        """A concurrent fit's call: only the fit that began first is recorded."""
        return threading.get_ident() in self._ignored_threads or self._fit_in_another_thread()

    def _fit_in_another_thread(self) -> bool:
        owner = self._fit_thread() if self._fit_thread is not None else None
        return owner is not None and owner is not threading.current_thread() and owner.is_alive()

    def _step_aside(self) -> None:
        self._ignored_threads.add(threading.get_ident())
        warn_at_user_code(
            "StagnationCallback: this model (or this callback) is already recording a fit "
            "running in another thread, so this fit is not recorded; its steps are not "
            "counted in the other fit's statistics either. Training is not affected.",
            RuntimeWarning,
        )

    def _guarded(self, function: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except Exception as error:
            self._warn(error)
            return None

    # ------------------------------------------------------------- Keras hooks

    def on_train_begin(self, logs: dict | None = None) -> None:
        # Left here by a concurrent fit of this thread that ended abnormally.
        self._ignored_threads.discard(threading.get_ident())
        if self._fit_in_another_thread() or live_fit_elsewhere(self.model):
            self._step_aside()
            return
        # A fit of ours interrupted outside its train step left these open.
        self._finish()
        self._reset_fit_state()
        self._fit_thread = weakref.ref(threading.current_thread())
        strategy = self.model.distribute_strategy
        self._records_here = distribution.writes_summaries(strategy)
        if self._stall_stopper is not None and distribution.worker_count(strategy) > 1:
            watching_only = not self._stall_stopper.stops
            self._stall_stopper = None
            self._lr_trigger = None  # decided alike on every worker: no capture variables
            if self._records_here and watching_only and self.lr_range_test:
                warn_at_user_code(
                    "StagnationCallback(lr_range_test=True) does nothing under "
                    "MultiWorkerMirroredStrategy: only the chief analyses the run. Run "
                    "tb_stagnation.lr_range_test(model, x, y) yourself.",
                    RuntimeWarning,
                )
            elif self._records_here:
                warn_at_user_code(
                    "StagnationCallback(stop_on_stall=True) does nothing under "
                    "MultiWorkerMirroredStrategy: only the chief analyses the run, and "
                    "all workers must stop together. Stalls are still logged and reported.",
                    RuntimeWarning,
                )
        if self._preflight is not None:
            self._preflight.quiet = not self._records_here
        if self._records_here:
            run_dir = os.path.join(self.log_dir, tags.RUN_SUBDIR)
            self._run_key = _run_key(run_dir)
            before = self._guarded(_steps_written_before, self._run_key, run_dir)
            if before is not None:
                self._steps_before = before
            # Not guarded: an unwritable log_dir is the user's to fix, now.
            self._writer = self._open_writer()
            self._finalizer = weakref.finalize(self, _close_quietly, self._writer)
        self._guarded(self._begin)

    def _begin(self) -> None:
        model = self.model
        self._find_layers()
        optimizer = getattr(model, "optimizer", None)
        iterations = getattr(optimizer, "iterations", None)
        if iterations is not None:
            # Continue the global batch count of an earlier fit of this model.
            self._global_batch_start = int(_to_numpy(iterations))
        # A new model logging into a used folder: go on after its batch steps.
        self._global_batch_start = max(self._global_batch_start, self._steps_before[1] + 1)
        if isinstance(self.update_freq, int):
            self._last_batch_bucket = self._global_batch_start // self.update_freq
        if self.verbose and self._writer is not None:
            print_message(f"StagnationCallback: writing to {self._writer.run_dir}")
        self._hooks = TrainingHooks(
            tf,
            model,
            on_first_batch=self._on_first_batch,
            on_error=self._warn,
            on_abort=self._finish,
        )
        self._hooks.install()

    def _find_layers(self) -> None:
        self._layers = model_info.weight_layers(self.model)
        trained = {id(v) for v in self.model.trainable_weights}
        self._variables = [
            (variable, index, id(variable) in trained)
            for index, layer in enumerate(self._layers)
            for variable in layer.variables
        ]
        self._weights = WeightSnapshot(tf, [variable for variable, _, _ in self._variables])

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self._hooks is not None and not self._ignores_this_thread():
            self._hooks.expect_call()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self._ignores_this_thread():
            return
        if self._epoch_offset is None:
            self._epoch_offset = max(0, self._steps_before[0] + 1 - int(epoch))
            if self._epoch_offset and self.verbose and self._writer is not None:
                print_message(
                    f"StagnationCallback: {self._writer.run_dir} already holds epochs up to "
                    f"{self._steps_before[0]}; this fit's epochs are logged from "
                    f"{int(epoch) + self._epoch_offset} on (as with initial_epoch)."
                )
        self._epoch = int(epoch) + self._epoch_offset
        self._batches_in_epoch = 0
        self._drained_at = 0
        self._last_grad_step_written = -1
        # After the first epoch, the last epoch end's measurement holds the start.
        if self._records_here and self._weights is not None and not self._weights.holds_start:
            self._guarded(self._weights.take)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self._ignores_this_thread():
            return
        self._batches_in_epoch = int(batch) + 1
        if self._preflight is not None and self._preflight.pending:
            self._guarded(self._preflight.after_batch)
        if self._recorder is None:
            return
        if self._batches_in_epoch - self._drained_at >= self._recorder.plan.ring_size // 2:
            self._drained_at = self._batches_in_epoch
            self._guarded(self._drain_fingerprints)
        if isinstance(self.update_freq, int):
            self._guarded(self._maybe_write_batch)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._writer is None or self._ignores_this_thread():
            return
        epoch = int(epoch) + (self._epoch_offset or 0)
        if self._preflight is not None and self._preflight.pending:
            # Before the epoch's statistics are read and reset: decide what still waits.
            self._guarded(self._preflight.after_batch, True)
        scalars: dict = {}
        layer_stats: dict = {}
        class_counts = None
        self._guarded(self._logs_values, logs or {}, scalars)
        self._guarded(self._learning_rate_value, scalars)
        self._guarded(self._weight_values, scalars, layer_stats)
        counts = self._guarded(self._recorder_values, scalars, layer_stats)
        if counts is not None:
            class_counts = counts
        self._guarded(self._probe_values, scalars, layer_stats)
        if self._layers:
            for tag in tags.LAYER_STATS:
                layer_stats.setdefault(tag, np.full(len(self._layers), np.nan))
        self._guarded(self._write_epoch, int(epoch), scalars, layer_stats, class_counts)
        if self._stall_stopper is not None:
            preflight = self._preflight.facts if self._preflight is not None else None
            stopped = self._guarded(
                self._stall_stopper.on_epoch_end,
                self.model,
                int(epoch),
                scalars,
                layer_stats,
                class_counts,
                self._card,
                preflight,
            )
            if stopped:
                self.stopped_epoch = int(epoch)
        self._global_batch_start += self._batches_in_epoch
        if self.verbose:
            print_message(_summary_line(int(epoch), scalars))

    def on_train_end(self, logs: dict | None = None) -> None:
        if threading.get_ident() in self._ignored_threads:
            self._ignored_threads.discard(threading.get_ident())
            return
        if self._ignores_this_thread():
            return
        self._finish()

    # ------------------------------------------------------------- lifecycle

    def _open_writer(self) -> SummaryWriter:
        run_dir = os.path.join(self.log_dir, tags.RUN_SUBDIR)
        try:
            return SummaryWriter(run_dir)
        except Exception as error:
            raise OSError(
                f"StagnationCallback cannot write to log_dir {self.log_dir!r} "
                f"(event files go to {run_dir!r}): {type(error).__name__}: {error}"
            ) from error

    def _finish(self) -> None:
        """Restore the model and close the file; after train end or an interrupt."""
        hooks, self._hooks = self._hooks, None
        if hooks is not None:
            self._guarded(hooks.uninstall)
        writer, self._writer = self._writer, None
        if writer is not None:
            self._guarded(writer.close)
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        self._recorder = None
        self._probe = None
        self._fit_thread = None
        if self._weights is not None:
            self._weights.release()

    # --------------------------------------------------------- first batch

    def _on_first_batch(self, iterator: Any) -> None:
        """Plan and create the in-graph recorder from the first batch's spec.

        Runs before the train function is traced, so every variable exists
        when the wrappers add their ops.
        """
        model = self.model
        spec = getattr(iterator, "element_spec", None)
        replicated = False
        if spec is not None:
            replicated = _has_per_replica_spec(spec)
            spec = tf.nest.map_structure(_first_replica_spec, spec)
        x_spec, y_spec, weight_spec = (
            keras.utils.unpack_x_y_sample_weight(spec) if spec is not None else (None, None, None)
        )
        # Every worker builds, plans and creates the same variables, in the
        # same order (distribution.py); only the recorder's host side differs.
        if spec is not None:
            self._guarded(self._build_model, spec)
        try:
            self._outputs = model_info.describe_outputs(model, keras, x_spec)
        except Exception as error:
            self._outputs = []
            self._warn(error)
        self._stats_index = model_info.stats_output_index(self._outputs)
        if self._writer is not None:
            self._sample_weighted = weight_spec is not None
            self._guarded(self._write_card, x_spec, replicated)
        self._label_plan = self._plan_labels(y_spec)
        recorder = GraphRecorder(
            tf,
            keras,
            self._recorder_plan(x_spec),
            model.distribute_strategy,
            model.optimizer,
            gradients_all_reduced=self._hooks is not None and self._hooks.gradients_all_reduced,
        )
        # Pre-flight (preflight.py): checks the spec now, taps the first batch's labels.
        tapped = None
        if self._preflight is not None:
            tapped = self._guarded(
                lambda: self._preflight.start(
                    tf,
                    keras,
                    model,
                    card=self._card,
                    outputs=self._outputs,
                    stats_index=self._stats_index,
                    label_plan=self._label_plan,
                    x_spec=x_spec,
                    y_spec=y_spec,
                    recorder=recorder,
                    writer=self._writer,
                    step=self._epoch,
                    on_error=self._warn,
                )
            )
        if not self._records_here:
            # Its variables exist now, as on the chief; nothing of ours runs
            # in this worker's train step, and nothing is read or written.
            self._preflight = None
            return
        self._distinct = epoch_stats.DistinctBatches(recorder.local_replicas)
        self._recorder = recorder
        if recorder.probe_capacity > 0:
            try:
                self._probe = ProbeRunner(tf, keras, model, self._layers, x_spec)
            except Exception as error:
                self._warn(error)
        feeds = tapped if tapped is not None else recorder
        if self._lr_trigger is not None:
            # Only with lr_range_test: default training keeps no rows.
            replicas = model.distribute_strategy.num_replicas_in_sync if replicated else 1
            wrapped = self._guarded(
                self._lr_trigger.start,
                tf,
                keras,
                model,
                x_spec,
                y_spec,
                feeds,
                self._warn,
                replicas,
            )
            if wrapped is not None:
                feeds = wrapped
        if self._hooks is not None:
            self._hooks.recorder = feeds

    def _recorder_plan(self, x_spec: Any) -> RecorderPlan:
        model = self.model
        x_leaves = keras.tree.flatten(x_spec) if x_spec is not None else []
        numeric = [leaf for leaf in x_leaves if _is_numeric_spec(leaf)]
        return RecorderPlan(
            num_layers=len(self._layers),
            layer_of_variable=_layer_of_variable(self._variables),
            gradient_freq=self.gradient_freq,
            x_leaves=tuple(LeafSpec(tuple(leaf.shape[1:]), leaf.dtype) for leaf in numeric),
            # The probe must be re-packable into the model's input structure.
            probe_size=self.probe_size if numeric and len(numeric) == len(x_leaves) else 0,
            label=self._label_plan,
            batch_logging=isinstance(self.update_freq, int),
            # Room for 4 executions between two drains of the ring.
            ring_size=max(_RING_SIZE, 4 * int(getattr(model, "steps_per_execution", 1) or 1)),
            xla=bool(getattr(model, "jit_compile", False))
            and not getattr(model, "run_eagerly", False),
            unlowered_conds=compat_keras.conds_may_stay_unlowered(keras, model),
        )

    def _build_model(self, spec: Any) -> None:
        """Build what Keras would only build while tracing the first step.

        Without a distribution strategy Keras defers building subclassed (and
        input-less Sequential) models and the optimizer to the first trace;
        with one it builds them symbolically first. We take the second path,
        so layers, weights and the optimizer's loss scale exist before our ops
        are traced.
        """
        model = self.model
        optimizer = getattr(model, "optimizer", None)
        if compat_keras.all_layers_built(model):
            if optimizer is not None and not optimizer.built:
                optimizer.build(model.trainable_variables)
            return
        if not compat_keras.symbolic_build(model, spec):
            return  # a Keras without it: probe_keras warned at on_train_begin
        self._find_layers()
        # No step has run yet: these are the first epoch's starting weights.
        if self._records_here and self._weights is not None:
            self._weights.take()

    def _plan_labels(self, y_spec: Any) -> LabelPlan | None:
        index = self._stats_index
        if index is None or y_spec is None:
            return None
        output = self._outputs[index]
        names = [o.name for o in self._outputs]
        target = model_info.select_target(y_spec, index, names, keras)
        if target is None or not hasattr(target, "shape"):
            return None
        sparse = bool(output.sparse_labels)
        dims = 1
        if output.task == model_info.TASK_CLASSIFICATION:
            classes = output.num_classes or 0
            if output.sparse_labels is None:
                # Labels shaped like the predictions are one-hot or probabilities.
                sparse = not (
                    target.shape.rank == len(output.shape)
                    and classes > 1
                    and target.shape[-1] == classes
                )
        elif output.task == model_info.TASK_REGRESSION:
            per_sample = target.shape[1:]
            if target.shape.rank and all(d is not None for d in per_sample):
                size = int(math.prod(int(d) for d in per_sample)) if per_sample else 1
                dims = size if 1 <= size <= MAX_REGRESSION_DIMS else 1
        return LabelPlan(
            output_index=index,
            output_names=tuple(names),
            task=output.task,
            num_classes=output.num_classes,
            sparse=sparse,
            dims=dims,
        )

    def _write_card(self, x_spec: Any, replicated: bool) -> None:
        batch_size = None
        if x_spec is not None:
            first = keras.tree.flatten(x_spec)[0]
            if first.shape.rank and first.shape[0] is not None:
                replicas = self.model.distribute_strategy.num_replicas_in_sync if replicated else 1
                batch_size = int(first.shape[0]) * int(replicas)
        steps = (self.params or {}).get("steps")
        card = model_info.build_model_card(
            self.model,
            self._layers,
            self._outputs,
            self._stats_index,
            learning_rate=self._current_learning_rate(),
            steps_per_epoch=int(steps) if steps is not None else None,
            batch_size=batch_size,
            update_freq=self.update_freq,
            version=_version(),
            # Beyond FORMAT.md's schema: how the statistics were sampled.
            extra={
                "gradient_freq": self.gradient_freq,
                "probe_size": self.probe_size,
                # class_weight / sample_weight reweight the loss: the
                # constant-predictor loss of the labels no longer applies.
                "sample_weighted": self._sample_weighted,
                # Nonzero when this fit's epochs were moved after those the
                # folder already held (Keras numbered them from this minus it).
                **({"epoch_offset": self._epoch_offset} if self._epoch_offset else {}),
            },
        )
        self._card = card  # for the pre-flight and stop_on_stall
        writer = self._writer
        assert writer is not None  # _on_first_batch calls this only with a writer open
        writer.write_model_card(self._epoch, card)
        writer.flush()

    # ------------------------------------------------------------- per batch

    def _drain_fingerprints(self) -> None:
        if self._recorder is not None and self._distinct is not None:
            self._distinct.add(self._recorder.drain_fingerprints())

    def _maybe_write_batch(self) -> None:
        every = int(self.update_freq)
        index = self._global_batch_start + self._batches_in_epoch - 1
        # Write after every `every` batches; with steps_per_execution > 1 the
        # callback sees every k-th batch only, so compare buckets, not indices.
        bucket = (index + 1) // every
        if bucket == self._last_batch_bucket:
            return
        self._last_batch_bucket = bucket
        # on_train_batch_end calls this only with a recorder, which exists only
        # where _records_here, where on_train_begin opened the writer.
        recorder, writer = self._recorder, self._writer
        assert recorder is not None and writer is not None
        loss, grad_norm, grad_step = recorder.read_batch_values()
        scalars = {tags.BATCH_LOSS: loss}
        if grad_step > self._last_grad_step_written:
            scalars[tags.BATCH_GRAD_GLOBAL_NORM] = grad_norm
            self._last_grad_step_written = grad_step
        writer.write_step(index, scalars=scalars)
        _note_written(self._run_key, batch=index)

    # ------------------------------------------------------------- per epoch

    def _logs_values(self, logs: dict, scalars: dict) -> None:
        for key, value in logs.items():
            try:
                array = np.asarray(value)
                if np.iscomplexobj(array):
                    continue  # a complex metric has no single curve to plot
                array = array.astype(np.float64)
            except (TypeError, ValueError):
                continue  # a string or structure: nothing to plot
            if array.ndim == 0:
                scalars[tags.logs_tag(str(key))] = float(array)

    def _current_learning_rate(self) -> float | None:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return None
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        # Keras evaluates a schedule at the current iteration here.
        value = inner.learning_rate
        return float(_to_numpy(value))

    def _learning_rate_value(self, scalars: dict) -> None:
        value = self._current_learning_rate()
        if value is not None:
            scalars[tags.LEARNING_RATE] = value

    def _weight_values(self, scalars: dict, layer_stats: dict) -> None:
        # One device call: no per-variable host copy (weight_snapshot.py).
        squares = self._weights.measure() if self._weights is not None else None
        if squares is None:
            return
        new_scalars, new_layers = epoch_stats.weight_stats(
            squares[0],
            squares[1],
            [index for _, index, _ in self._variables],
            [is_global for _, _, is_global in self._variables],
            len(self._layers),
        )
        scalars.update(new_scalars)
        layer_stats.update(new_layers)

    def _recorder_values(self, scalars: dict, layer_stats: dict) -> np.ndarray | None:
        recorder = self._recorder
        if recorder is None:
            return None
        readout = recorder.read()
        self._drain_fingerprints()
        distinct = self._distinct.count() if self._distinct is not None else 0
        recorder.reset_epoch()
        if self._distinct is not None:
            self._distinct.reset()
        grad_scalars, grad_layers = epoch_stats.gradient_stats(readout, len(self._layers))
        data_scalars, class_counts = epoch_stats.data_stats(readout, self._label_plan)
        scalars.update(grad_scalars)
        scalars.update(data_scalars)
        if data_scalars.get(tags.BATCHES_SEEN, 0) > 0:
            scalars[tags.BATCHES_DISTINCT] = float(distinct)
        layer_stats.update(grad_layers)
        return class_counts

    def _probe_values(self, scalars: dict, layer_stats: dict) -> None:
        if self._probe is None or self._recorder is None:
            return
        leaves = self._recorder.read_probe()
        if leaves is None:
            return
        result = self._probe.run(leaves)
        layer_stats[tags.LAYER_DEAD_FRACTION] = result.dead
        layer_stats[tags.LAYER_SATURATED_FRACTION] = result.saturated
        index = self._stats_index
        if index is None or index >= len(result.outputs):
            return
        output = self._outputs[index]
        probabilities = epoch_stats.class_probabilities(
            result.outputs[index], output.task, output.activation, output.from_logits
        )
        if probabilities is None:
            return
        new_scalars, classes = epoch_stats.prediction_stats(probabilities, self._previous_classes)
        self._previous_classes = classes
        scalars.update(new_scalars)

    def _write_epoch(
        self, epoch: int, scalars: dict, layer_stats: dict, class_counts: np.ndarray | None
    ) -> None:
        writer = self._writer
        assert writer is not None  # on_epoch_end returns early without a writer
        writer.write_step(
            epoch, scalars=scalars, layer_stats=layer_stats, class_counts=class_counts
        )
        _note_written(self._run_key, epoch=epoch)
        # Flushed every epoch, so a running TensorBoard sees the epoch now.
        writer.flush()


def _to_numpy(value: Any) -> np.ndarray:
    # Variable.numpy() avoids the NumPy 2 `__array__(copy=...)` deprecation path.
    if hasattr(value, "numpy"):
        value = value.numpy()
    return np.asarray(value)


def _check_log_dir(log_dir: Any) -> str:
    """The folder as a str, `~` expanded; a clear TypeError for anything else."""
    if isinstance(log_dir, os.PathLike):
        log_dir = os.fspath(log_dir)
    if isinstance(log_dir, bytes):
        # The os module takes bytes paths too; decode them the same way.
        log_dir = os.fsdecode(log_dir)
    if not isinstance(log_dir, str):
        raise TypeError(
            "log_dir must be a folder path (a str or os.PathLike, such as pathlib.Path), "
            f"the one given to keras.callbacks.TensorBoard; got {type(log_dir).__name__} "
            f"{log_dir!r}"
        )
    if "\0" in log_dir:
        raise ValueError(f"log_dir contains a NUL character: {log_dir!r}")
    return os.path.expanduser(log_dir)


def _run_key(run_dir: str) -> str:
    if "://" in run_dir:
        return run_dir.rstrip("/")
    return os.path.realpath(run_dir)


def _steps_written_before(key: str, run_dir: str) -> tuple[int, int]:
    """The newest epoch and batch steps already in `run_dir` (-1: none)."""
    files = _event_files(run_dir)
    with _WRITTEN_LOCK:
        known = _WRITTEN.get(key)
        if not files:
            # Emptied since (a notebook cell that clears its log folder first).
            _WRITTEN.pop(key, None)
            return -1, -1
        if known is not None:
            return known[0], known[1]
    # First seen in this process: a run of an earlier one is continued too.
    found = _steps_on_disk(files)
    with _WRITTEN_LOCK:
        known = _WRITTEN.setdefault(key, list(found))
        return known[0], known[1]


def _event_files(run_dir: str) -> list[str]:
    gfile = tf.io.gfile
    if not gfile.isdir(run_dir):
        return []
    return sorted(
        os.path.join(run_dir, name) for name in gfile.listdir(run_dir) if "tfevents" in name
    )


def _steps_on_disk(files: list[str]) -> tuple[int, int]:
    from tensorboard.backend.event_processing import event_file_loader

    epoch = batch = -1
    # The card and pre-flight record come before a fit's first epoch ends: a
    # fit that died at its first step leaves no epoch to go on after.
    # An LR range test's record before training is at step 0 with no epoch.
    not_epochs = (tags.MODEL_CARD, tags.PREFLIGHT, tags.LR_RANGE)
    for path in files:
        loader = event_file_loader.EventFileLoader(path)
        for event in loader.Load():
            for value in event.summary.value:
                if value.tag.startswith(tags.BATCH_PREFIX):
                    batch = max(batch, int(event.step))
                elif value.tag not in not_epochs:
                    epoch = max(epoch, int(event.step))
    return epoch, batch


def _note_written(key: str | None, epoch: int = -1, batch: int = -1) -> None:
    if key is None:
        return
    with _WRITTEN_LOCK:
        known = _WRITTEN.setdefault(key, [-1, -1])
        known[0] = max(known[0], int(epoch))
        known[1] = max(known[1], int(batch))


def _check_update_freq(update_freq: Any) -> str | int:
    if update_freq == "epoch":
        return "epoch"
    if update_freq == "batch":
        return 1
    if isinstance(update_freq, (int, np.integer)) and not isinstance(update_freq, bool):
        if update_freq >= 1:
            return int(update_freq)
    raise ValueError(
        f"update_freq must be 'epoch', 'batch' or an integer >= 1, got {update_freq!r}"
    )


def _layer_of_variable(variables: list) -> dict:
    """id -> layer index, for Keras variables and the TF variables they wrap.

    `optimizer.apply` receives the Keras variables; the all-reduce (hooks.py)
    receives `variable.value`, the tf.Variable (or distributed variable) inside.
    """
    layer_of: dict = {}
    for variable, index, _ in variables:
        layer_of[id(variable)] = index
        inner = compat_keras.backing_variable(variable)
        if inner is not None:
            layer_of[id(inner)] = index
    return layer_of


def _first_replica_spec(spec: Any) -> Any:
    values = compat_keras.per_replica_value_specs(spec)
    return values[0] if values else spec


def _has_per_replica_spec(spec: Any) -> bool:
    return any(
        compat_keras.per_replica_value_specs(leaf) is not None for leaf in tf.nest.flatten(spec)
    )


def _is_numeric_spec(spec: Any) -> bool:
    if not isinstance(spec, tf.TensorSpec):
        return False  # ragged and sparse inputs cannot fill a fixed-shape probe
    dtype = getattr(spec, "dtype", None)
    shape = getattr(spec, "shape", None)
    if dtype is None or shape is None or shape.rank is None or shape.rank < 1:
        return False
    return bool(dtype.is_floating or dtype.is_integer or dtype.is_bool)


def _close_quietly(writer: SummaryWriter) -> None:
    try:
        writer.close()
    except Exception:
        pass


def _summary_line(epoch: int, scalars: dict) -> str:
    def show(tag: str, fmt: str = ".3g") -> str:
        value = scalars.get(tag)
        return "-" if value is None else format(value, fmt)

    return (
        f"StagnationCallback epoch {epoch}: grad norm {show(tags.GRAD_GLOBAL_NORM)}, "
        f"update ratio {show(tags.UPDATE_GLOBAL_RATIO)}, "
        f"distinct batches {show(tags.BATCHES_DISTINCT, '.0f')}/{show(tags.BATCHES_SEEN, '.0f')}"
    )
