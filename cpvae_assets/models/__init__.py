"""Models: the VAE family (vanilla, beta, MMD) on TensorFlow/Keras 3, and PCA as the linear baseline.

Importing this package does not import TensorFlow (``stack``, ``trainer`` and ``keras_export`` do);
it only keeps TensorFlow's C++ start-up banner quiet for whichever module imports it later.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
