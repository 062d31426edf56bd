"""OpenMP's wait policy, set when ``dicsbi`` is imported.

numba's parallel kernels and torch both use OpenMP; with the default active wait policy the idle workers of
one runtime spin for a while after each parallel region and starve the other on small machines (measured on
2 cores: a 1000 x 64 torch op after a numba feature kernel took 2.8 ms instead of 0.02 ms, and one posterior
draw of 1000 samples 234 ms instead of a few).  Passive waiting is set unless the user chose a policy.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
