"""Models: the VAE family (vanilla, beta, MMD) on TensorFlow/Keras 3, and PCA as the linear baseline.

Importing this package does not import TensorFlow (``stack``, ``trainer`` and ``keras_export`` do);
it only sets how much TensorFlow's C++ core logs, before any module here imports it.
"""

import os
from pathlib import Path


def _tensorflow_log_level() -> str:
    """Warnings and information off ("2"); errors too ("3") on a machine without an NVIDIA driver,
    where TensorFlow's CUDA probe logs "failed call to cuInit" in every process although nothing is
    wrong. Failures still raise Python exceptions."""
    return "2" if Path("/proc/driver/nvidia/version").exists() else "3"


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", _tensorflow_log_level())
