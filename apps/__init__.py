"""The recon applications: the command line (``recon_apps.cli``) and the viewer (``recon_apps.viewer``).

torch's CPU threads (libgomp) spin while they wait by default. On a machine shared with other work
that is ruinous: VolSDF steps with 2 threads ran about 5x slower spinning than waiting passively
(benchmarks/results/omp_wait.md). The commands wait passively unless the user set OMP_WAIT_POLICY;
this must happen before torch is first imported, which no module imports at start-up.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
