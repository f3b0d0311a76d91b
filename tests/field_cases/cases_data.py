"""Field cases: labels, data pipelines and training loops."""

from __future__ import annotations

import numpy as np

from field_cases.corpus import FieldCase, Training


def _digits():
    """scikit-learn's 8x8 digits, pixels scaled to [0, 1], integer labels 0-9."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype("float32"), y.astype("int32")


def _imbalanced(class_weight: bool) -> Training:
    """95 % / 5 % binary task with weak features; optionally the answer's class_weight."""
    import keras
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=2000,
        n_features=20,
        n_informative=4,
        weights=[0.95, 0.05],
        class_sep=0.6,
        flip_y=0.0,
        random_state=3,
    )
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    fit = {"x": x.astype("float32"), "y": y.astype("float32"), "batch_size": 64, "epochs": 12}
    if class_weight:
        fit["class_weight"] = {0: 1.0, 1: 19.0}
    return Training(model, fit)


def _digits_one_sigmoid(fixed: bool) -> Training:
    """Ten digit classes into Dense(1, sigmoid) + binary_crossentropy (labels 0-9)."""
    import keras

    x, y = _digits()
    head = (
        keras.layers.Dense(10, activation="softmax")
        if fixed
        else keras.layers.Dense(1, activation="sigmoid")
    )
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"), head])
    loss = "sparse_categorical_crossentropy" if fixed else "binary_crossentropy"
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return Training(model, {"x": x, "y": y.astype("float32"), "batch_size": 64, "epochs": 10})


def _custom_step(from_logits: bool) -> Training:
    """A subclassed Model whose own train_step computes the loss (the thread's pattern)."""
    import keras
    import tensorflow as tf

    class StepModel(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.hidden = keras.layers.Dense(32, activation="relu")
            self.head = keras.layers.Dense(10, activation="softmax")
            self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.acc_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

        def call(self, x, training=False):
            return self.head(self.hidden(x))

        @property
        def metrics(self):
            return [self.loss_tracker, self.acc_tracker]

        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                pred = self(x, training=True)
                loss = self.loss_fn(y, pred)
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
            self.loss_tracker.update_state(loss)
            self.acc_tracker.update_state(y, pred)
            return {"loss": self.loss_tracker.result(), "accuracy": self.acc_tracker.result()}

    x, y = _digits()
    model = StepModel()
    model.build((None, 64))
    model.compile(optimizer=keras.optimizers.Adam(0.003))
    return Training(model, {"x": x, "y": y, "batch_size": 64, "epochs": 10})


def _zero_init(zeros: bool) -> Training:
    """Stacked ReLU Dense layers with kernel_initializer='zeros' (and zero biases)."""
    import keras

    x, y = _digits()
    init = "zeros" if zeros else "glorot_uniform"
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(50, activation="relu", kernel_initializer=init),
            keras.layers.Dense(50, activation="relu", kernel_initializer=init),
            keras.layers.Dense(10, activation="softmax", kernel_initializer=init),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return Training(model, {"x": x, "y": y, "batch_size": 64, "epochs": 10})


def _breast_cancer(scaled: bool) -> Training:
    """Raw breast-cancer features (areas up to ~4000) into a small ReLU MLP with SGD."""
    import keras
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    if scaled:
        x = StandardScaler().fit_transform(x)
    model = keras.Sequential(
        [
            keras.Input((30,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.01), loss="binary_crossentropy", metrics=["accuracy"]
    )
    return Training(
        model, {"x": x.astype("float32"), "y": y.astype("float32"), "batch_size": 32, "epochs": 12}
    )


def _same_batch_generator() -> Training:
    """The thread's generator: the batch counter is never advanced, so every step
    yields the first batch of the (once-shuffled) index list."""
    import keras

    x, y = _digits()
    batch_size = 32
    idx = np.random.default_rng(0).permutation(len(x))

    def generator():
        count = 0
        while True:
            batch = idx[count * batch_size : (count + 1) * batch_size]  # count never increments
            yield x[batch], y[batch]

    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return Training(model, {"x": generator(), "steps_per_epoch": 20, "epochs": 8})


CASES = [
    FieldCase(
        name="data_imbalance_no_class_weight",
        url="https://github.com/keras-team/keras/issues/3068",
        summary=(
            "Binary task with 95 % of one class; 94 % accuracy but the model predicts the "
            "prevalent class for 100 % of inputs (ROC AUC 0.71). Answer: pass class_weight "
            "with inverse class frequencies to fit (a participant confirmed it solved the "
            "same problem). Departures: make_classification (3000 x 20, 4 informative, "
            "class_sep=0.6, weights=[0.95, 0.05], 2000 samples) instead of the asker's data, a "
            "16-16 ReLU MLP (the asker's model is not shown), Adam, 12 epochs."
        ),
        build=lambda: _imbalanced(class_weight=False),
        stalled=True,
        stall_from=1,
        root=("class_imbalance",),
        consequences=("prediction_collapse",),
        false_text=(r"unscaled", r"learning rate .*too (small|large)"),
        # Labelled after the plain-Keras run was seen (issue 13 counts curve-visible
        # stalls); the reason is what the logged curves show.
        curve_hidden=(
            "the accuracy settles at 0.95 while the loss falls; that 0.95 is the majority "
            "class's share, which only the labels show"
        ),
    ),
    FieldCase(
        name="data_imbalance_class_weight",
        url="https://github.com/keras-team/keras/issues/3068",
        summary="Healthy twin: the answer's fix, class_weight={0: 1, 1: 19} in fit.",
        build=lambda: _imbalanced(class_weight=True),
        stalled=False,
        twin_of="data_imbalance_no_class_weight",
    ),
    FieldCase(
        name="data_digits_one_sigmoid_bce",
        url="https://datascience.stackexchange.com/questions/38604/too-low-accuracy-on-mnist-dataset-using-a-neural-network",
        summary=(
            "MNIST (10 classes, integer labels 0-9) into Dense(64, relu) -> Dense(1, sigmoid) "
            "with binary_crossentropy and Adam: loss -55.03 and accuracy 0.114 from epoch 2 on. "
            "Cause in the thread: one sigmoid output and a binary loss for ten integer labels "
            "(labels outside [0, 1] make the binary cross-entropy negative); use 10 softmax "
            "units with a categorical loss. Departures: under Keras 3 the loss is computed "
            "from the sigmoid's logits, so it does not plateau at -55 but keeps falling "
            "without bound (-11 to -2400) while accuracy sits at 0.10; scikit-learn's 8x8 "
            "digits scaled to [0, 1] (the asker fed raw 0-255 pixels, left out so that the "
            "only cause is the "
            "label/loss mismatch), no validation split, batch 64, 10 epochs."
        ),
        build=lambda: _digits_one_sigmoid(fixed=False),
        stalled=True,
        stall_from=1,
        root=("loss_output_mismatch",),
        consequences=("prediction_collapse", "saturated_activations", "zero_gradients"),
        keras_root=("loss_output_mismatch",),
        false_text=(r"unscaled", r"imbalanc"),
    ),
    FieldCase(
        name="data_digits_softmax_sparse",
        url="https://datascience.stackexchange.com/questions/38604/too-low-accuracy-on-mnist-dataset-using-a-neural-network",
        summary="Healthy twin: Dense(10, softmax) with sparse_categorical_crossentropy.",
        build=lambda: _digits_one_sigmoid(fixed=True),
        stalled=False,
        twin_of="data_digits_one_sigmoid_bce",
    ),
    FieldCase(
        name="data_train_step_probabilities",
        url="https://github.com/keras-team/keras/issues/16906",
        summary=(
            "Healthy custom training loop: a subclassed keras.Model overriding train_step and "
            "computing its own loss (SparseCategoricalCrossentropy on the softmax output, "
            "from_logits=False), loss/accuracy trackers returned from train_step, nothing "
            "passed to compile but the optimizer. The thread's stalled variant "
            "(from_logits=True on a softmax output, accuracy 0.06-0.12 for ~100 epochs) was "
            "dropped: under Keras 3.15 it trains as well as this one (accuracy 0.86 in 15 "
            "epochs), so only this healthy model is kept. Departures: digits instead of CIFAR, "
            "Dense(32)-Dense(10) instead of the asker's CNN, Adam(0.003), 10 epochs."
        ),
        build=lambda: _custom_step(from_logits=False),
        stalled=False,
    ),
    FieldCase(
        name="data_zero_kernel_init",
        url="https://github.com/AliPakzad/DeepLearning-WeightInitialization-Impact-CIFAR10",
        summary=(
            "Notebook studying all-zero initialisation: Flatten -> Dense(50, relu, "
            "kernel_initializer=Zeros) stack -> softmax on CIFAR-10; the model does not learn "
            "(accuracy at chance) because every ReLU outputs 0, so no kernel gets a gradient "
            "and only the output bias moves. Departures: 8x8 digits instead of CIFAR-10, two "
            "hidden layers of 50, batch 64, 10 epochs. No finding code names a bad initialisation; "
            "scored on the consequences."
        ),
        build=lambda: _zero_init(zeros=True),
        stalled=True,
        stall_from=0,
        consequences=("zero_gradients", "dead_units", "prediction_collapse", "vanishing_gradients"),
        false_text=(r"unscaled", r"imbalanc", r"learning rate .*too"),
    ),
    FieldCase(
        name="data_glorot_kernel_init",
        url="https://github.com/AliPakzad/DeepLearning-WeightInitialization-Impact-CIFAR10",
        summary="Healthy twin: the default glorot_uniform kernel initialiser.",
        build=lambda: _zero_init(zeros=False),
        stalled=False,
        twin_of="data_zero_kernel_init",
    ),
    FieldCase(
        name="data_breast_cancer_unscaled",
        url="https://github.com/keras-team/keras/issues/2975",
        summary=(
            "Keras model always predicts the same output class; a participant reports the "
            "same symptom was caused by unnormalised inputs and fixed by StandardScaler. "
            "Departures: the asker's data is not shown; here scikit-learn's breast-cancer "
            "features unscaled (area up to ~4250) into Dense(16, relu) -> Dense(1, sigmoid), "
            "SGD(0.01), batch 32, 12 epochs."
        ),
        build=lambda: _breast_cancer(scaled=False),
        stalled=True,
        stall_from=1,
        root=("unscaled_inputs",),
        consequences=(
            "prediction_collapse",
            "class_imbalance",
            "dead_units",
            "saturated_activations",
            "exploding_gradients",
        ),
        false_text=(r"learning rate .*too small",),
    ),
    FieldCase(
        name="data_breast_cancer_scaled",
        url="https://github.com/keras-team/keras/issues/2975",
        summary="Healthy twin: StandardScaler on the features.",
        build=lambda: _breast_cancer(scaled=True),
        stalled=False,
        twin_of="data_breast_cancer_unscaled",
    ),
    FieldCase(
        name="data_generator_same_batch",
        url="https://github.com/keras-team/keras/issues/5818",
        summary=(
            "Custom fit_generator generator: `count = 0` before `while 1:` and never "
            "incremented, so it yields the same batch forever; after the first epoch accuracy "
            "jumps to 1.0 and the epochs get fast (the asker: 'the generator doesn't reset "
            "appropriately'). Departures: 8x8 digits instead of UrbanSound spectrograms, "
            "Dense(64)-Dense(10) instead of the asker's CNN, integer labels with a sparse "
            "loss instead of to_categorical, 8 epochs of 20 steps. The training loss keeps "
            "shrinking towards 0 (memorising one batch) while accuracy sits at 1.0 from "
            "epoch 4 (0-based): labelled stalled because the run stops learning the data."
        ),
        build=_same_batch_generator,
        stalled=True,
        stall_from=4,
        root=("repeated_batches",),
        false_text=(r"unscaled", r"imbalanc"),
        # Labelled after the plain-Keras run was seen (issue 13 counts curve-visible
        # stalls); the reason is what the logged curves show.
        curve_hidden=(
            "the training loss falls and the accuracy reaches 1.0 on the one batch it sees "
            "again and again: healthy-looking curves; only the batches show the repeat"
        ),
    ),
]
