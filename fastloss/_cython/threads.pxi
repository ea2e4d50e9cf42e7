# Included by each extension module: the cap of its parallel loops, which
# fastloss._core.threads keeps equal to fastloss.set_num_threads's setting.
from .fastmath cimport fl_max_threads, fl_set_thread_cap


def set_num_threads(int n):
    """Run this module's parallel loops on ``n`` threads (0: OpenMP's default, ``OMP_NUM_THREADS``)."""
    fl_set_thread_cap(n)


def get_num_threads():
    """The threads this module's parallel loops use when called from this thread."""
    return fl_max_threads()
