"""Field cases: images, CNNs, transfer learning with a frozen base, dropout, pixel scale."""

from __future__ import annotations

import numpy as np

from field_cases.corpus import FieldCase, Training


def _digits(classes=None, pixels: str = "unit", upsample: int = 1):
    """scikit-learn's 8x8 grayscale digits as (n, h, w, 1) images and integer labels.

    pixels="unit": values in [0, 1]; pixels="255": the 0-255 range of raw image files
    (the bundled values 0-16 times 255/16)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x, y = data.images.astype("float32"), data.target.astype("int64")
    if classes is not None:
        keep = np.isin(y, classes)
        x, y = x[keep], y[keep]
    if upsample > 1:
        x = np.kron(x, np.ones((1, upsample, upsample), dtype="float32"))
    x = x / 16.0 if pixels == "unit" else x * (255.0 / 16.0)
    return x[..., None], y


def _cnn_three_classes(fixed: bool) -> Training:
    """newbedev thread: Conv2D stack, then Dense(1)+sigmoid+binary_crossentropy for 3 classes."""
    import keras

    x, y = _digits(classes=[0, 1, 2])
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input(x.shape[1:]),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(32, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(3 if fixed else 1),
            layers.Activation("softmax" if fixed else "sigmoid"),
        ]
    )
    if fixed:
        target = keras.utils.to_categorical(y, 3)
        loss = "categorical_crossentropy"
    else:
        target = y.astype("float32")  # class_mode="binary" on 3 folders: labels 0, 1, 2
        loss = "binary_crossentropy"
    model.compile(optimizer="rmsprop", loss=loss, metrics=["accuracy"])
    return Training(model, {"x": x, "y": target, "batch_size": 32, "epochs": 12})


def _mlp_sigmoid_digit_labels() -> Training:
    """datascience.SE 38604: 784-64-1 MLP, sigmoid + binary_crossentropy on digit labels 0-9."""
    import keras

    x, y = _digits(pixels="255")
    x = x.reshape(len(x), -1)
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    fit = {"x": x, "y": y.astype("float32"), "validation_split": 0.33, "epochs": 12}
    return Training(model, fit)


def _conv_one_output(fixed: bool) -> Training:
    """stats.SE 481881: two Conv2D layers then Dense(1, softmax) with categorical_crossentropy."""
    import keras

    x, digit = _digits()
    y = (digit >= 5).astype("float32").reshape(-1, 1)
    model = keras.Sequential(
        [
            keras.Input(x.shape[1:]),
            keras.layers.Conv2D(30, 3, activation="relu"),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(1, activation="sigmoid" if fixed else "softmax"),
        ]
    )
    loss = "binary_crossentropy" if fixed else "categorical_crossentropy"
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return Training(model, {"x": x, "y": y, "batch_size": 64, "epochs": 10})


def _mlp_dropout(rate: float) -> Training:
    """SO 48355700: the Keras MNIST MLP example with both Dropout layers at 0.99."""
    import keras

    x, y = _digits()
    x = x.reshape(len(x), -1)
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(256, activation="relu", use_bias=False),
            keras.layers.Dropout(rate),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dropout(rate),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.RMSprop(), loss="categorical_crossentropy", metrics=["accuracy"]
    )
    fit = {"x": x, "y": keras.utils.to_categorical(y, 10), "batch_size": 128, "epochs": 15}
    return Training(model, fit)


def _full_image_kernel(learning_rate: float) -> Training:
    """keras-team/keras#1006: one Conv2D whose kernel covers the whole image, plain SGD."""
    import keras

    x, digit = _digits(pixels="255")
    y = keras.utils.to_categorical((digit >= 5).astype("int64"), 2)
    init = "he_normal"
    model = keras.Sequential(
        [
            keras.Input(x.shape[1:]),
            keras.layers.Conv2D(32, x.shape[1:3], kernel_initializer=init, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(25, kernel_initializer=init, activation="relu"),
            keras.layers.Dense(2, kernel_initializer=init, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 12})


def _pretrained_base():
    """A small conv base 'pretrained' for 2 epochs on digits 0-4 (no weight downloads)."""
    import keras

    layers = keras.layers
    base = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
        ],
        name="conv_base",
    )
    x, y = _digits(classes=[0, 1, 2, 3, 4])
    pretrain = keras.Sequential([base, layers.Dense(5, activation="softmax")])
    pretrain.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    pretrain.fit(x, y, batch_size=32, epochs=2, verbose=0)
    return base


def _transfer(freeze_everything: bool) -> Training:
    """keras-team/keras#4910 as transfer learning: frozen base, new head on digits 5-9."""
    import keras

    base = _pretrained_base()
    base.trainable = False
    model = keras.Sequential(
        [
            base,
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(5, activation="softmax"),
        ]
    )
    if freeze_everything:
        # The thread's effect: the layers meant to train end up frozen too.
        for layer in model.layers:
            layer.trainable = False
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _digits(classes=[5, 6, 7, 8, 9])
    return Training(model, {"x": x, "y": y - 5, "batch_size": 32, "epochs": 12})


CASES = [
    FieldCase(
        name="img_cnn_sigmoid_one_unit_three_classes",
        url="https://newbedev.com/cnn-with-keras-accuracy-not-improving",
        summary=(
            "Three-class image CNN (Conv2D/MaxPooling blocks, Dense(64), Dropout(0.5)) ending in "
            "Dense(1)+Activation('sigmoid'), binary_crossentropy, rmsprop, generators with "
            "class_mode='binary': accuracy did not improve. Answer: one sigmoid unit with binary "
            "cross-entropy cannot express three classes; use Dense(3)+softmax, "
            "categorical_crossentropy and class_mode='categorical'. Departures: sklearn digits "
            "0/1/2 (8x8 grayscale scaled to [0,1]) instead of the asker's image folders, labels "
            "0/1/2 given directly instead of through a generator, two small conv blocks "
            "(16 filters) and Dense(32), 12 epochs. Keras 3 computes this loss from the logits, so "
            "labels 2 drive it unboundedly negative while accuracy stays near chance (0.34-0.41)."
        ),
        build=lambda: _cnn_three_classes(fixed=False),
        stalled=True,
        stall_from=0,
        root=("loss_output_mismatch",),
        consequences=("prediction_collapse", "saturated_activations", "zero_gradients"),
        keras_root=("loss_output_mismatch",),
    ),
    FieldCase(
        name="img_cnn_softmax_three_units",
        url="https://newbedev.com/cnn-with-keras-accuracy-not-improving",
        summary="Healthy twin: the answer's fix, Dense(3)+softmax with one-hot labels and "
        "categorical_crossentropy.",
        build=lambda: _cnn_three_classes(fixed=True),
        stalled=False,
        twin_of="img_cnn_sigmoid_one_unit_three_classes",
    ),
    FieldCase(
        name="img_conv_softmax_one_unit",
        url="https://stats.stackexchange.com/questions/481881/convolutional-neural-network-fails-even-when-given-answer",
        summary=(
            "Binary task on (99, 25, 2) image-like arrays: Conv2D(30)+Conv2D(64), Flatten, "
            "Dense(1, activation='softmax'), categorical_crossentropy, adam: predicts 'true' "
            "for every input even when the answer is in the input. Answer: softmax over a "
            "single unit always outputs 1, so nothing can be learned; use sigmoid with "
            "binary_crossentropy (or two softmax units). Departures: sklearn digits (8x8x1, "
            "label digit>=5) instead of the asker's 2-channel arrays, 10 epochs instead of 1, "
            "batch 64. The categorical loss is exactly 0 on every batch (no gradient) and "
            "accuracy stays at the positive rate 0.4986."
        ),
        build=lambda: _conv_one_output(fixed=False),
        stalled=True,
        stall_from=0,
        root=("loss_output_mismatch",),
        consequences=("zero_gradients", "prediction_collapse"),
        keras_root=("loss_output_mismatch",),
    ),
    FieldCase(
        name="img_conv_sigmoid_one_unit",
        url="https://stats.stackexchange.com/questions/481881/convolutional-neural-network-fails-even-when-given-answer",
        summary="Healthy twin: the answer's fix, Dense(1, sigmoid) with binary_crossentropy.",
        build=lambda: _conv_one_output(fixed=True),
        stalled=False,
        twin_of="img_conv_softmax_one_unit",
    ),
    FieldCase(
        name="img_mlp_dropout_099",
        url="https://wiki.gubat.org/content/stackoverflow.com_en_all_2023-11/questions/48355700/dropout-behavior-in-keras-with-rate-1-dropping-all-input-units-not-as-expected",
        summary=(
            "Keras MNIST MLP example (Dense(512, relu), Dropout, Dense(512, relu), Dropout, "
            "Dense(10, softmax), RMSprop) with both Dropout rates at 0.99: loss ~2.30, accuracy "
            "~0.11 on every epoch, 'effectively no training' (rate 1.0 was the asker's Keras bug "
            "and trained normally). The answer: with 99% of units dropped nothing is learned. "
            "Departures: sklearn digits (64 pixels in [0,1]) instead of MNIST, 256 units instead "
            "of 512, 15 epochs. Cause code: dropout_too_high (added for this class of case)."
        ),
        build=lambda: _mlp_dropout(0.99),
        stalled=True,
        stall_from=0,
        root=("dropout_too_high",),
        consequences=("prediction_collapse",),
        keras_root=("dropout_too_high",),
    ),
    FieldCase(
        name="img_conv_full_kernel_sgd",
        url="https://github.com/keras-team/keras/issues/1006",
        summary=(
            "Binary 400x400 grayscale images, Convolution2D(32, 400x400 kernel, he_normal) + "
            "relu, Flatten, Dense(25, he_normal) + relu, Dense(2, softmax), "
            "categorical_crossentropy, optimizer='sgd' (lr 0.01): loss 11.45 and accuracy 0.447 "
            "frozen for all 50 epochs. Maintainer (EderSantana) and asker: the learning rate was "
            "too large; with lr 0.0003 (or BatchNormalization) it trained. Departures: sklearn "
            "digits (8x8 kernel = whole image, label digit>=5); the thread does not show the "
            "preprocessing, here the pixels are in the raw 0-255 range (assumed: with [0,1] "
            "pixels lr 0.01 trains), 12 epochs. The run collapses to loss 0.693 after a first "
            "epoch at ~100 (dead ReLUs, constant prediction)."
        ),
        build=lambda: _full_image_kernel(0.01),
        stalled=True,
        stall_from=1,
        root=("learning_rate_too_large", "unscaled_inputs"),
        consequences=("dead_units", "prediction_collapse", "zero_gradients", "exploding_gradients"),
        keras_root=("learning_rate_too_large",),
    ),
    FieldCase(
        name="img_conv_full_kernel_sgd_small_lr",
        url="https://github.com/keras-team/keras/issues/1006",
        summary="Healthy twin: the thread's fix, SGD with learning rate 0.0003.",
        build=lambda: _full_image_kernel(0.0003),
        stalled=False,
        # The twin keeps the raw 0-255 pixels: a warning that says so is true.
        also_true=("unscaled_inputs",),
        twin_of="img_conv_full_kernel_sgd",
    ),
    FieldCase(
        name="img_transfer_head_frozen_too",
        url="https://github.com/keras-team/keras/issues/4910",
        summary=(
            "Keras FAQ 'How can I freeze Keras layers?' script: both the 'frozen' and the "
            "'trainable' model failed to update any weight, because trainable=False had been "
            "set before the layer was built, so the layer meant to train was frozen too "
            "(model.summary() miscounted params). Fix in the thread: set trainable after "
            "calling the layer, so only the intended layers are frozen. Departures: a transfer "
            "learning setup instead of the FAQ's Dense(32) toy: a small conv base 'pretrained' "
            "for 2 epochs on digits 0-4 and frozen, a new Dense head for digits 5-9; the "
            "Keras-1.2 build-order mechanism does not exist in Keras 3, so the head is frozen "
            "explicitly (every layer trainable=False), which is the thread's effect. 12 epochs."
        ),
        build=lambda: _transfer(freeze_everything=True),
        stalled=True,
        stall_from=0,
        root=("frozen_layers",),
        # prediction_collapse added after the first run: accuracy 0.194 is the same in every
        # epoch (one class's share of 5), which the logged numbers show independently.
        consequences=("zero_gradients", "prediction_collapse"),
        keras_root=("frozen_layers",),
    ),
    FieldCase(
        name="img_transfer_frozen_base",
        url="https://github.com/keras-team/keras/issues/4910",
        summary=(
            "Healthy twin: only the pretrained conv base is frozen (intentionally); the new "
            "Dense head trains."
        ),
        build=lambda: _transfer(freeze_everything=False),
        stalled=False,
        twin_of="img_transfer_head_frozen_too",
        false_text=(r"frozen", r"trainable=False", r"not trainable"),
    ),
]
