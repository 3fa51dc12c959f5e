"""A small deterministic, headless renderer for posed test images of a mesh.

:func:`render_views` ray-casts a mesh (Open3D) from cameras on a sphere around it and returns
RGB with a smooth procedural texture under a fixed diffuse light, alpha, depth and normals;
:func:`write_render_folder` writes them as a folder that the transforms.json, COLMAP and
cameras.npz loaders of :mod:`recon.io.cameras` all read as the same scene.
"""

from recon.render.folder import atomic_folder, write_render_folder
from recon.render.renderer import RenderResult, render_views
from recon.render.rig import fibonacci_directions, look_at, sphere_rig

__all__ = ["RenderResult", "atomic_folder", "fibonacci_directions", "look_at", "render_views", "sphere_rig",
           "write_render_folder"]
