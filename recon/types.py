"""Core data types: plain dataclasses of numpy arrays.

Conventions
-----------
* Coordinates are in the input's world units. ``PointCloud.points`` is float64 so
  that georeferenced coordinates (LAS offsets of 10^5..10^6 m) keep millimetres;
  algorithms work on float32 *local* coordinates produced by
  :func:`recon.ops.transforms.to_local`.
* Normals are float32 unit vectors (rows may be zero only before validation).
* Colours are float32 in [0, 1], RGB.
* Cameras follow OpenCV: x right, y down, z forward; ``cam_to_world`` is 4x4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class PointCloud:
    """A point cloud.

    Attributes:
        points: (N, 3) float64 positions in world units.
        normals: optional (N, 3) float32 normals (unit length after validation).
        colors: optional (N, 3) float32 RGB in [0, 1].
        sensors: optional (N, 3) float64 per-point sensor (scanner) origin in world units.
        attrs: extra per-point arrays of length N (intensity, classification, ...).
        source: the file it was read from, for messages.
    """

    points: np.ndarray
    normals: np.ndarray | None = None
    colors: np.ndarray | None = None
    sensors: np.ndarray | None = None
    attrs: dict[str, np.ndarray] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        self.points = np.ascontiguousarray(self.points, dtype=np.float64).reshape(-1, 3)
        if self.normals is not None:
            self.normals = np.ascontiguousarray(self.normals, dtype=np.float32).reshape(-1, 3)
        if self.colors is not None:
            self.colors = np.ascontiguousarray(self.colors, dtype=np.float32).reshape(-1, 3)
        if self.sensors is not None:
            self.sensors = np.ascontiguousarray(self.sensors, dtype=np.float64).reshape(-1, 3)

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @property
    def has_normals(self) -> bool:
        return self.normals is not None

    def bounds(self) -> np.ndarray:
        """(2, 3) float64: min and max corner."""
        return np.stack([self.points.min(axis=0), self.points.max(axis=0)])

    def subset(self, index: np.ndarray) -> "PointCloud":
        """A new cloud with the rows selected by a boolean mask or an index array."""

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]

        return PointCloud(
            points=self.points[index],
            normals=take(self.normals),
            colors=take(self.colors),
            sensors=take(self.sensors),
            attrs={k: v[index] for k, v in self.attrs.items()},
            source=self.source,
        )

    def with_normals(self, normals: np.ndarray) -> "PointCloud":
        """A copy sharing all arrays except ``normals``."""
        return PointCloud(self.points, normals, self.colors, self.sensors, dict(self.attrs), self.source)


@dataclass
class Mesh:
    """A triangle mesh.

    Attributes:
        vertices: (V, 3) float64 positions in world units.
        faces: (F, 3) int64 vertex indices, counter-clockwise seen from outside.
        vertex_normals: optional (V, 3) float32.
        vertex_colors: optional (V, 3) float32 RGB in [0, 1].
    """

    vertices: np.ndarray
    faces: np.ndarray
    vertex_normals: np.ndarray | None = None
    vertex_colors: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float64).reshape(-1, 3)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int64).reshape(-1, 3)

    @property
    def n_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def n_faces(self) -> int:
        return int(self.faces.shape[0])

    def is_empty(self) -> bool:
        return self.n_faces == 0

    def to_trimesh(self):  # -> trimesh.Trimesh
        import trimesh

        kwargs: dict[str, Any] = {}
        if self.vertex_colors is not None:
            kwargs["vertex_colors"] = (np.clip(self.vertex_colors, 0, 1) * 255).astype(np.uint8)
        if self.vertex_normals is not None:
            kwargs["vertex_normals"] = self.vertex_normals
        return trimesh.Trimesh(self.vertices, self.faces, process=False, **kwargs)

    @classmethod
    def from_trimesh(cls, tm) -> "Mesh":
        colors = None
        visual = getattr(tm, "visual", None)
        if visual is not None and getattr(visual, "kind", None) == "vertex":
            colors = np.asarray(visual.vertex_colors)[:, :3].astype(np.float32) / 255.0
        return cls(np.asarray(tm.vertices), np.asarray(tm.faces), vertex_colors=colors)

    def transformed(self, scale: float = 1.0, offset: np.ndarray | None = None) -> "Mesh":
        """Vertices mapped by ``v * scale + offset`` (offset (3,) float64)."""
        v = self.vertices * scale
        if offset is not None:
            v = v + np.asarray(offset, dtype=np.float64)
        return Mesh(v, self.faces.copy(), self.vertex_normals, self.vertex_colors)


@dataclass
class Cameras:
    """Pinhole cameras in the OpenCV convention (x right, y down, z forward).

    Attributes:
        K: (C, 3, 3) float64 intrinsics in pixels.
        cam_to_world: (C, 4, 4) float64 camera-to-world transforms.
        width: image width in pixels.
        height: image height in pixels.
        distortion: optional (C, k) OpenCV distortion coefficients (k1, k2, p1, p2[, k3]).
    """

    K: np.ndarray
    cam_to_world: np.ndarray
    width: int
    height: int
    distortion: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.K.shape[0])


@dataclass
class Views:
    """Posed images: cameras plus lazily read image, mask and depth files.

    Attributes:
        cameras: the cameras, one per image.
        image_paths: one path per camera.
        mask_paths: optional one path per camera.
        depth_paths: optional one path per camera.
    """

    cameras: Cameras
    image_paths: list[str]
    mask_paths: list[str] | None = None
    depth_paths: list[str] | None = None

    def __len__(self) -> int:
        return len(self.image_paths)


@dataclass
class Scene:
    """What a loader produces: a point cloud and/or posed views, plus the world transform.

    Attributes:
        points: the point cloud, if any.
        views: the posed images, if any.
        to_world: (4, 4) float64 mapping the library's working frame to world units.
        units: a guess of the world units ("m", "mm", ...) or None.
    """

    points: PointCloud | None = None
    views: Views | None = None
    to_world: np.ndarray = field(default_factory=lambda: np.eye(4))
    units: str | None = None
