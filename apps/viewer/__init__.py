"""The ``recon view`` front end: point clouds, meshes and cameras in a pyvista window,
as off-screen screenshots, or in the browser (trame).

Modules: :mod:`.scene` (recon types -> layers, adapter registry), :mod:`.heatmap`
(distance to a ground truth, metrics text), :mod:`.app` (the window: panels, keys,
picking), :mod:`.screenshot`, :mod:`.web`, :mod:`.inputs` (file loading, display
detection), :mod:`.live` (refreshing view during a reconstruction), :mod:`.rig`
(synthetic camera rigs), :mod:`.readme_images` (the README pictures) and :mod:`.cli`
(the ``view`` command and ``register(app)``).

Nothing heavy is imported here, so ``recon_apps.viewer.cli.register`` is cheap.
"""
