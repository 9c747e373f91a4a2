"""mmgcn: multimodal recommendation with per-modality graph convolution.

The package follows one data flow (see ``README.md``)::

    reader -> Dataset -> prepare -> graph views -> model -> trainer -> evaluator -> bench

Lower layers never import higher ones: ``mmgcn.data`` knows no model, ``mmgcn.models``
know no trainer, and only ``mmgcn.cli`` knows argparse.
"""

__version__ = "0.1.0"
