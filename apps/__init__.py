"""The recon applications: the command line (``recon_apps.cli``) and the viewer (``recon_apps.viewer``).

torch's CPU threads (libgomp) spin for a long while when they wait, by default. On a machine shared
with other work that is ruinous (2-thread VolSDF steps 5x slower than waiting passively), while
passive waiting costs ~15-30 % on a quiet machine. A short spin then sleep (GOMP_SPINCOUNT=10000)
was the fastest quiet and in between when shared (benchmarks/results/omp_wait.md). It is set unless
the user chose a waiting policy; it must happen before torch is first imported, which no module
imports at start-up.
"""

import os

if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")
