"""The detectors: one function per cause, registered in `findings.REGISTRY`.

Importing this package registers them all. Modules group detectors by what
they look at; a new cause is one function with `@detector("code")` in the
module that fits (or a new module imported below).
"""

from tb_stagnation.analysis.detectors import (  # noqa: F401  (imported to register)
    data,
    gradients,
    learning_rate,
    model,
    overfit,
    predictions,
    units,
)
