"""Adam as one fused kernel per variable (TensorFlow's ``ResourceApplyAdam``).

The same update as ``keras.optimizers.Adam`` (beta_1 0.9, beta_2 0.999, epsilon 1e-7, no amsgrad, no
weight decay): alpha = lr x sqrt(1 - beta_2^t) / (1 - beta_1^t); m += (g - m)(1 - beta_1);
v += (g^2 - v)(1 - beta_2); w -= m alpha / (sqrt(v) + epsilon). Keras runs it as about a dozen
element-wise ops per variable, each a pass over the weights; at the Cell Painting shape those passes
took ~40% of a training step on a 2-core CPU. The fused kernel does one pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7  # keras.optimizers.Adam defaults


class FusedAdam(tf.Module):
    def __init__(self, variables: Sequence[tf.Variable], learning_rate: float = 1e-3):
        super().__init__()
        self.targets = list(variables)
        # shaped as their targets, whose widths may change between trainings (``Stack.resize``)
        moment = lambda v: tf.Variable(tf.zeros_like(v), shape=v.shape, trainable=False)  # noqa: E731
        self.m = [moment(v) for v in self.targets]
        self.v = [moment(v) for v in self.targets]
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.learning_rate = tf.Variable(learning_rate, dtype=tf.float32, trainable=False)

    def reset(self, learning_rate: float) -> None:
        """Zero moments (of the targets' current shapes) and step count, as a new optimizer."""
        for target, m, v in zip(self.targets, self.m, self.v):
            m.assign(tf.zeros_like(target))
            v.assign(tf.zeros_like(target))
        self.iterations.assign(0)
        self.learning_rate.assign(learning_rate)

    def apply(self, gradients: Sequence[tf.Tensor]) -> None:
        step = tf.cast(self.iterations + 1, tf.float32)
        beta_1_power, beta_2_power = tf.pow(tf.constant(BETA_1), step), tf.pow(tf.constant(BETA_2), step)
        for var, m, v, grad in zip(self.targets, self.m, self.v, gradients):
            tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle, beta1_power=beta_1_power,
                                         beta2_power=beta_2_power, lr=self.learning_rate, beta1=tf.constant(BETA_1),
                                         beta2=tf.constant(BETA_2), epsilon=tf.constant(EPSILON), grad=grad)
        self.iterations.assign_add(1)
