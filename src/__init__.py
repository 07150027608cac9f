"""llamanuts: Llama inference in readable Python, traced stage by stage."""

# First, before anything loads numpy's BLAS or Numba's OpenMP: both read their thread policy once,
# when they start (src/common/threadpolicy.py says which, and why).
from .common.threadpolicy import set_thread_policy

set_thread_policy()
