"""The one door to the private parts of Keras, TensorFlow and TensorBoard.

Callbacks never see gradients or batches, TensorBoard's HTTP server answers
some errors before any plugin is asked, and its decoders trust what an event
file claims: for these the package reaches past the public APIs. Every such
access lives here, as one named accessor whose docstring says what it reads,
why, which versions it was checked against, and what happens without it.
Everything else calls the accessors, never the private names.

- `compat.keras`: Keras 3 and TensorFlow (the callback, the LR range test,
  the overfit check). Imports neither library itself: callers pass objects.
- `compat.tensorboard`: TensorBoard (the tab, the reader, the summary
  writer). Never imports TensorFlow.

`tests/test_compat.py` asserts every attribute exists in the installed
versions, so an upgrade that removes one fails there, by name, before a
user's run degrades.
"""

from __future__ import annotations

# The versions every accessor was checked against (the two venvs of CI: the
# oldest pair setup.py accepts, and the current one).
CHECKED_AGAINST = (
    "TensorFlow 2.16.2 + Keras 3.5.0 + TensorBoard 2.16.2",
    "TensorFlow 2.21.0 + Keras 3.15.1 + TensorBoard 2.21.0",
)
