"""Models: the VAE family (vanilla, beta, MMD) on TensorFlow/Keras 3, and PCA as the linear baseline.

Importing this package does not import TensorFlow (``stack``, ``trainer`` and ``keras_export`` do);
it only sets how much TensorFlow's C++ core logs and how it threads, before any module here imports it.
"""

import os
from pathlib import Path


def _tensorflow_log_level() -> str:
    """Warnings and information off ("2"); errors too ("3") on a machine without an NVIDIA driver,
    where TensorFlow's CUDA probe logs "failed call to cuInit" in every process although nothing is
    wrong. Failures still raise Python exceptions."""
    return "2" if Path("/proc/driver/nvidia/version").exists() else "3"


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", _tensorflow_log_level())


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def tensorflow_threads() -> dict[str, int]:
    """TensorFlow's thread pools as this process configures them (0: TensorFlow's own default)."""
    return {"inter_op": int(os.environ.get("TF_NUM_INTEROP_THREADS", 0)),
            "intra_op": int(os.environ.get("TF_NUM_INTRAOP_THREADS", 0))}


# One thread per op, ops side by side: the trainer's K members are independent chains of small ops,
# and splitting each small matmul over the cores costs more than it gains. Measured on 2 cores at the
# Cell Painting level-5 shape, K = 6: 1.5 s per epoch against 2.2-3.3 s with TensorFlow's defaults
# (every op on all cores); K = 1 is as fast either way. Machines with many cores keep a few threads
# per op. Set the variables yourself to override; they are read when TensorFlow starts its runtime.
# ``$CPVAE_CORES`` is the cores this process may use (default: all usable): a worker of ``cpvae demo``
# gets its share, so two workers do not run four threads on two cores.
CORES_ENV = "CPVAE_CORES"
THREAD_VARIABLES = ("TF_NUM_INTEROP_THREADS", "TF_NUM_INTRAOP_THREADS")
# the names of THREAD_VARIABLES this package set (not the user), so a worker process may set them anew
DEFAULTED_ENV = "CPVAE_TF_THREADS_DEFAULTED"
BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def process_cores() -> int:
    return max(1, int(os.environ.get(CORES_ENV) or usable_cores()))


def configure_threads() -> None:
    """Default each of THREAD_VARIABLES that is not set (before TensorFlow is imported), from ``process_cores``."""
    cores = process_cores()
    defaults = {"TF_NUM_INTEROP_THREADS": cores, "TF_NUM_INTRAOP_THREADS": max(1, cores // 4)}
    defaulted = [name for name in THREAD_VARIABLES if name not in os.environ]
    for name in defaulted:
        os.environ[name] = str(defaults[name])
    if defaulted:
        os.environ[DEFAULTED_ENV] = ",".join(defaulted)


configure_threads()


def use_cores(cores: int) -> None:
    """This process may use ``cores`` (a worker of ``cpvae demo``, before it imports TensorFlow): the
    thread counts this package defaulted (inherited from the parent; a user's own setting stays) are set
    again from ``cores``, and BLAS uses at most ``cores`` threads (read when a BLAS library loads; one
    loaded already is limited through threadpoolctl)."""
    from threadpoolctl import threadpool_limits

    os.environ[CORES_ENV] = str(cores)
    for name in filter(None, os.environ.pop(DEFAULTED_ENV, "").split(",")):
        os.environ.pop(name, None)
    configure_threads()
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, str(cores))
    threadpool_limits(cores)
