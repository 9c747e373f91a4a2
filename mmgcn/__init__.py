"""mmgcn: multimodal recommendation with per-modality graph convolution.

The package follows one data flow (see ``README.md``)::

    reader -> Dataset -> prepare -> graph views -> model -> trainer -> evaluator -> bench

Lower layers never import higher ones: ``mmgcn.data`` knows no model, ``mmgcn.models``
know no trainer, and only ``mmgcn.cli`` knows argparse.
"""

__version__ = "0.1.0"

import warnings as _warnings

# PyG (torch_geometric) still calls torch.jit.script when it is imported, which torch 2.14
# reports as deprecated on every command; the message concerns PyG, not this package or
# its users, so exactly that one is silenced.
_warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
