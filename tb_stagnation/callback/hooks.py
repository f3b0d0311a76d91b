"""Puts the recorder into one model's real training step, and takes it out again.

Callbacks never see gradients or batches, so for the length of one `fit` we
replace three attributes on the *instances* (never the classes, so other
models are untouched):

- `model._compute_loss`: sees x, y, y_pred and the loss of every training step
  (Keras's `train_step` calls it with `training=True`; validation calls it
  with `training=False` and is left alone); and `model.compute_loss`, which a
  custom `train_step` calls instead (recorded only while the train function
  runs, and once when `_compute_loss` calls it);
- `model.optimizer.apply`: sees the gradients (`apply_gradients` calls it)
  and hands the optimizer those `record_gradients` returns (the same ones,
  released after the gradient pass: graph_recorder.py);
- under a strategy with several replicas, the optimizer's
  `_all_reduce_sum_gradients` instead: it sees the gradients after the
  all-reduce, i.e. those of the whole step over every replica and worker (the
  ones `apply` sees are one replica's share); reading them there costs no
  second all-reduce;
- `model.train_function`: a thin Python wrapper that prepares the recorder
  from the first batch's spec before the first trace, falls back to a clean
  train function if the instrumented one fails, and cleans up when training
  is interrupted (Keras does not call `on_train_end` then).

Each private name is reached through compat/keras.py, which says the
versions it was checked against; Keras 3.0, which has no `_compute_loss` and
calls `compute_loss` from `train_step`, is recorded through the latter. At
install `probe_keras` names, in one warning, any private attribute whose
absence costs this run something.

Our wrappers are set with `object.__setattr__`, so Keras's and TensorFlow's
attribute tracking never see them (nothing of ours is saved with the model).

A train function call belongs to our fit only when it comes from the thread
that installed the hooks, right after our `on_train_batch_begin`. Any other
call is another user of the same model: a `fit` in another thread gets
Keras's own clean train function (our wrappers pass through while it traces),
and a call from our thread after our `fit` ended abnormally (an exception
outside the train step, where Keras calls no `on_train_end`) first restores
the model. Restoring puts back Keras's train function of before the `fit`,
never None, so a `fit` still running in another thread goes on.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from typing import Any

from tb_stagnation.callback import distribution
from tb_stagnation.callback.console import warn_at_user_code
from tb_stagnation.compat import keras as compat_keras

# The hooks installed on each model, so a fit that died without cleanup is
# cleaned up by the next one.
_INSTALLED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

_COMPUTE_LOSS_ARGS = ("x", "y", "y_pred", "sample_weight", "training")

# Per thread: inside Keras's `_compute_loss` (which calls the public
# `compute_loss`: record once), and running a train function that is not
# ours (another thread's `fit` on the same model: record nothing).
_THREAD = threading.local()

# Marks our train-function wrapper, so a stale one is never mistaken for
# Keras's clean function.
_WRAPPER_MARK = "_tb_stagnation_wrapper"


def is_instrumented(function: Any) -> bool:
    """Whether `function` is one of our train-function wrappers."""
    return bool(getattr(function, _WRAPPER_MARK, False))


def live_fit_elsewhere(model: Any) -> bool:
    """Whether our hooks on `model` belong to a `fit` still running in another thread."""
    hooks = _INSTALLED.get(model)
    return hooks is not None and hooks.owned_by_another_live_thread()


class TrainingHooks:
    """The wrappers of one fit on one model.

    `recorder` is set by `on_first_batch` (called with the first iterator)
    before the train function is traced; until then the wrappers pass through.
    `on_error(exception)` is called for any failure inside our code.
    """

    def __init__(
        self,
        tf: Any,
        model: Any,
        on_first_batch: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        on_abort: Callable[[], None],
    ) -> None:
        self._tf = tf
        self._model = model
        self._on_first_batch = on_first_batch
        self._on_error = on_error
        self._on_abort = on_abort
        self._patches: list[tuple[Any, str, Any, bool, Any]] = []
        self.recorder: Any = None
        self.active = False
        self._first_batch_done = False
        self._wrapper: Any = None
        # Trace-time flag: inside our train function. Not per thread: under a
        # strategy the replica functions trace in threads of their own.
        self._in_train_function = False
        # The thread whose `fit` installed us (weakly: a finished thread
        # means a finished `fit`), and whether our `on_train_batch_begin`
        # announced the next train function call.
        self._owner: Any = weakref.ref(threading.current_thread())
        self._owner_ident = threading.get_ident()
        self._call_expected = False
        # Keras's train function of before `install`: put back by `uninstall`
        # and run for the calls that are not ours.
        self._keras_function: Any = None
        # True when the gradients are read after the all-reduce (see install).
        self.gradients_all_reduced = False
        # What `probe_keras` found missing at install (compat/keras.py).
        self.missing_privates: list = []

    # -------------------------------------------------------------- install

    def install(self) -> None:
        model = self._model
        previous = _INSTALLED.get(model)
        if previous is not None:
            # Left by a `fit` that ended without cleaning up, or a second
            # StagnationCallback in this one: the newest records.
            previous.uninstall()
        self._warn_missing_privates()
        function = getattr(model, "train_function", None)
        self._keras_function = None if is_instrumented(function) else function
        private = compat_keras.model_compute_loss(model)
        if private is not None:  # Keras 3.0 has none: its train_step calls compute_loss
            self._patch(model, compat_keras.COMPUTE_LOSS, self._wrap_compute_loss(private))
        public = getattr(model, "compute_loss", None)
        if callable(public):
            self._patch(model, "compute_loss", self._wrap_public_compute_loss(public))
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None:
            self._patch(optimizer, "apply", self._wrap_apply(optimizer, optimizer.apply))
            self._patch_all_reduce(getattr(optimizer, "inner_optimizer", optimizer))
        self.active = True
        _INSTALLED[model] = self
        # `fit` built its train function before `on_train_begin`; it is traced
        # at the first batch, so forcing a rebuild here costs no extra trace.
        model.make_train_function(force=True)
        self._wrapper = self._wrap_train_function(model.train_function)
        model.train_function = self._wrapper

    def _warn_missing_privates(self) -> None:
        """One warning naming each private Keras attribute this run lacks
        (compat/keras.py); each accessor already turns off just its part."""
        strategy = self._model.distribute_strategy
        missing = compat_keras.probe_keras(self._model, distribution.replicas_in_sync(strategy))
        self.missing_privates = missing
        if missing and distribution.writes_summaries(strategy):
            import keras  # already imported: the model is a Keras model

            warn_at_user_code(
                compat_keras.missing_warning(missing, str(getattr(keras, "__version__", "3"))),
                RuntimeWarning,
            )

    def expect_call(self) -> None:
        """The next train function call in this thread is our `fit`'s step."""
        self._call_expected = True

    def owned_by_another_live_thread(self) -> bool:
        if self._owner_ident == threading.get_ident():
            return False
        owner = self._owner()
        return owner is not None and owner.is_alive()

    def _patch_all_reduce(self, optimizer: Any) -> None:
        """Read the gradients after Keras's cross-replica sum, when there is one.

        A LossScaleOptimizer hands unscaled gradients to its inner optimizer,
        which does the all-reduce: that is the one to wrap.
        """
        if distribution.replicas_in_sync(self._model.distribute_strategy) <= 1:
            return
        original = compat_keras.all_reduce_sum_gradients(optimizer)
        if original is None:
            return  # Keras 3.0: `apply` keeps recording, per replica
        self._patch(
            optimizer, compat_keras.ALL_REDUCE_SUM_GRADIENTS, self._wrap_all_reduce(original)
        )
        self.gradients_all_reduced = True

    def uninstall(self) -> None:
        """Restore the originals and Keras's own train function."""
        self.active = False
        for obj, name, wrapper, had_own, original in reversed(self._patches):
            if vars(obj).get(name) is not wrapper:
                continue  # someone wrapped on top of us; ours passes through now
            if had_own:
                object.__setattr__(obj, name, original)
            else:
                object.__delattr__(obj, name)
        self._patches = []
        if _INSTALLED.get(self._model) is self:
            del _INSTALLED[self._model]
        if self._model.train_function is self._wrapper:
            # Never None: a `fit` in another thread looks it up at every step.
            self._model.train_function = self._keras_function
        self._wrapper = None

    def _patch(self, obj: Any, name: str, wrapper: Any) -> None:
        had_own = name in vars(obj)
        original = vars(obj).get(name)
        object.__setattr__(obj, name, wrapper)
        self._patches.append((obj, name, wrapper, had_own, original))

    def _recording(self) -> bool:
        """Whether a wrapper called now is tracing (or running) our fit's step."""
        return (
            self.active
            and self.recorder is not None
            and self._in_train_function
            and not getattr(_THREAD, "foreign", False)
        )

    def _safely(self, function: Callable, *args: Any) -> Any:
        try:
            return function(*args)
        except Exception as error:  # our failure must never stop training
            self.active = False
            self._on_error(error)
            return None

    # ------------------------------------------------------------- wrappers

    def _wrap_compute_loss(self, original: Callable) -> Callable:
        hooks = self

        @functools.wraps(original)
        def _compute_loss(*args: Any, **kwargs: Any) -> Any:
            outer = getattr(_THREAD, "in_private_loss", False)
            _THREAD.in_private_loss = True
            try:
                loss = original(*args, **kwargs)
            finally:
                _THREAD.in_private_loss = outer
            hooks._record_loss_call(args, kwargs, loss)
            return loss

        return _compute_loss

    def _wrap_public_compute_loss(self, original: Callable) -> Callable:
        """`compute_loss`, for a custom `train_step` that calls it directly (the
        documented Keras 3 way) instead of `_compute_loss`: its labels and
        outputs are recorded too, but only while our train function traces, so
        a custom `test_step` calling it records nothing."""
        hooks = self

        @functools.wraps(original)
        def compute_loss(*args: Any, **kwargs: Any) -> Any:
            loss = original(*args, **kwargs)
            if not getattr(_THREAD, "in_private_loss", False):
                hooks._record_loss_call(args, kwargs, loss)
            return loss

        return compute_loss

    def _record_loss_call(self, args: tuple, kwargs: dict, loss: Any) -> None:
        if not self._recording():
            return
        bound = dict(zip(_COMPUTE_LOSS_ARGS, args))
        bound.update(kwargs)
        # Identity check: `training` is the literal True in train_step.
        if bound.get("training", True) is True:
            self._safely(
                self.recorder.record_data,
                bound.get("x"),
                bound.get("y"),
                bound.get("y_pred"),
                loss,
            )

    def _wrap_apply(self, optimizer: Any, original: Callable) -> Callable:
        hooks = self

        @functools.wraps(original)
        def apply(grads: Any, trainable_variables: Any = None, *args: Any, **kwargs: Any) -> Any:
            grads = list(grads)
            if trainable_variables is not None:
                trainable_variables = list(trainable_variables)
            if hooks._recording() and not hooks.gradients_all_reduced:
                variables = trainable_variables
                if variables is None:
                    variables = compat_keras.optimizer_trainable_variables(optimizer)
                released = hooks._safely(hooks.recorder.record_gradients, grads, variables)
                if released is not None:
                    grads = released
            return original(grads, trainable_variables, *args, **kwargs)

        return apply

    def _wrap_all_reduce(self, original: Callable) -> Callable:
        hooks = self

        @functools.wraps(original)
        def _all_reduce_sum_gradients(grads_and_vars: Any, *args: Any, **kwargs: Any) -> Any:
            reduced = list(original(grads_and_vars, *args, **kwargs))
            if hooks._recording():
                variables = [variable for _, variable in reduced]
                released = hooks._safely(
                    hooks.recorder.record_gradients, [grad for grad, _ in reduced], variables
                )
                if released is not None:
                    reduced = list(zip(released, variables))
            return reduced

        return _all_reduce_sum_gradients

    def _wrap_train_function(self, instrumented: Callable) -> Callable:
        hooks = self
        tf = self._tf
        passthrough = (StopIteration, tf.errors.OutOfRangeError)
        state: dict[str, Any] = {"function": instrumented, "calls": 0}

        def train_function(iterator: Any) -> Any:
            if not hooks._owns_this_call():
                return hooks._run_foreign_call(iterator)
            if not hooks._first_batch_done:
                hooks._first_batch_done = True
                hooks._safely(hooks._on_first_batch, iterator)
            state["calls"] += 1
            try:
                hooks._in_train_function = True
                try:
                    return state["function"](iterator)
                finally:
                    hooks._in_train_function = False
            except passthrough:
                raise  # the end of an epoch's data: Keras catches it
            except Exception as error:
                if state["function"] is not instrumented or state["calls"] > 1:
                    # Later failures come from the user's model or data, and
                    # retrying could hide them.
                    hooks._abort()
                    raise
                # Our ops may be what failed (an XLA compile error shows only
                # at the first call). Retry once without them: if the clean
                # function works, training goes on without our in-graph
                # statistics; if it fails too, the error is the user's.
                state["function"] = hooks._clean_train_function()
                try:
                    result = state["function"](iterator)
                except BaseException:
                    hooks._abort()
                    raise
                hooks._on_error(error)
                return result
            except BaseException:
                hooks._abort()  # KeyboardInterrupt: Keras will not call on_train_end
                raise

        setattr(train_function, _WRAPPER_MARK, True)
        return train_function

    def _owns_this_call(self) -> bool:
        if threading.get_ident() != self._owner_ident or not self._call_expected:
            return False
        self._call_expected = False
        return True

    def _run_foreign_call(self, iterator: Any) -> Any:
        """A train function call that is not our fit's step: never record it.

        From our own thread, or from any thread once ours has ended, it means
        our `fit` is over (it ended outside the train step, so Keras skipped
        `on_train_end`): restore the model, then run Keras's function. From
        another thread while ours is alive, it is a concurrent `fit`: it runs
        Keras's function and our `fit` goes on recording its own steps.
        """
        if _INSTALLED.get(self._model) is self and not self.owned_by_another_live_thread():
            self._abort()
            if _INSTALLED.get(self._model) is self:
                self.uninstall()  # on_abort failed to
        function = self._keras_train_function()
        outer = getattr(_THREAD, "foreign", False)
        _THREAD.foreign = True
        try:
            return function(iterator)
        finally:
            _THREAD.foreign = outer

    def _keras_train_function(self) -> Callable:
        function = self._keras_function
        if function is not None:
            return function
        model = self._model
        try:
            # Built without assigning it, so our fit keeps its wrapper.
            function = compat_keras.make_step_function(model)
        except Exception:  # noqa: BLE001 - build it the public way below
            function = None
        if function is None:  # Keras 3.0 has no `_make_function`
            model.make_train_function(force=True)
            function = model.train_function
            if self._wrapper is not None and _INSTALLED.get(model) is self:
                model.train_function = self._wrapper
        self._keras_function = function
        return function

    def _clean_train_function(self) -> Callable:
        self.active = False
        model = self._model
        for obj, name, wrapper, had_own, original in reversed(self._patches):
            if vars(obj).get(name) is wrapper:
                if had_own:
                    object.__setattr__(obj, name, original)
                else:
                    object.__delattr__(obj, name)
        self._patches = []
        model.make_train_function(force=True)
        clean = model.train_function
        # Keras looks `train_function` up at every step: keep ours in front
        # so an interrupt still cleans up.
        model.train_function = self._wrapper
        return clean

    def _abort(self) -> None:
        try:
            self._on_abort()
        except Exception:  # never mask the user's exception with ours
            pass
