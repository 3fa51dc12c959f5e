"""Scene building without rendering: frustums, colourings, glyphs, distances, options."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from recon.errors import ConfigError, InputError, ReconError
from recon.types import Cameras, Mesh, PointCloud, Views
from recon_apps.viewer.heatmap import distance_to_mesh, metrics_text
from recon_apps.viewer.inputs import has_display, load_input, resolve
from recon_apps.viewer.scene import (
    Layer,
    SceneOptions,
    build_panels,
    default_frustum_depth,
    frustum_corners,
    frustum_polydata,
    layers_for,
    normal_glyphs,
    normals_to_rgb,
    register_adapter,
)


def ring_cameras(n: int, radius: float = 3.0, height: float = 1.0) -> Cameras:
    """``n`` cameras on a horizontal circle, each looking at the origin (OpenCV axes)."""
    K = np.repeat(np.array([[[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]]), n, axis=0)
    poses = []
    for i in range(n):
        a = 2 * np.pi * i / n
        c = np.array([radius * np.cos(a), radius * np.sin(a), height])
        z = -c / np.linalg.norm(c)
        x = np.cross(z, [0.0, 0.0, 1.0])
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, c
        poses.append(m)
    return Cameras(K, np.stack(poses), 640, 480)


def unit_square() -> Mesh:
    return Mesh(np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], float), np.array([[0, 1, 2], [0, 2, 3]]))


def test_frustum_corners_backproject_through_K_and_pose():
    cams = Cameras(np.array([[[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]]), np.eye(4)[None], 640, 480)
    centres, corners = frustum_corners(cams, depth=2.0)
    np.testing.assert_allclose(centres, [[0, 0, 0]])
    # pixel (0,0) -> x = (0-320)/500 * 2, y = (0-240)/500 * 2, z = 2 (OpenCV: y down, z forward)
    np.testing.assert_allclose(corners[0], [[-1.28, -0.96, 2], [1.28, -0.96, 2], [1.28, 0.96, 2], [-1.28, 0.96, 2]])
    shifted = np.eye(4)
    shifted[:3, :3] = [[1, 0, 0], [0, -1, 0], [0, 0, -1]]  # looking down -z, y up
    shifted[:3, 3] = [5, 0, 1]
    cams2 = Cameras(cams.K, shifted[None], 640, 480)
    c2, k2 = frustum_corners(cams2, depth=1.0)
    np.testing.assert_allclose(c2[0], [5, 0, 1])
    np.testing.assert_allclose(k2[0, 0], [5 - 0.64, 0.48, 0.0])


@pytest.mark.parametrize("n", [1, 7, 24])
def test_one_frustum_per_camera(n):
    cams = ring_cameras(n)
    poly = frustum_polydata(cams, depth=0.3)
    assert poly.n_cells == 9 * n
    ids = np.asarray(poly.cell_data["camera"])
    assert len(np.unique(ids)) == n
    assert np.bincount(ids).tolist() == [9] * n
    # every frustum's apex is its camera centre
    pts = np.asarray(poly.points).reshape(n, 6, 3)
    np.testing.assert_allclose(pts[:, 0], cams.cam_to_world[:, :3, 3])
    # Views draw through the same adapter: one layer, n frustums
    views = Views(cams, [f"img{i}.png" for i in range(n)])
    (layer,) = layers_for(views, "views", SceneOptions(frustum_depth=0.3))
    assert layer.name == "cameras" and layer.dataset.n_cells == 9 * n


def test_default_frustum_depth_is_a_tenth_of_the_rig():
    assert default_frustum_depth(ring_cameras(12, radius=3.0, height=0.0)) == pytest.approx(0.3)
    assert default_frustum_depth(ring_cameras(1)) == 1.0


def test_cloud_colourings_order_and_errors():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(500, 3))
    n = p / np.linalg.norm(p, axis=1, keepdims=True)
    cloud = PointCloud(p, normals=n, colors=(n + 1) / 2, attrs={"intensity": np.arange(500.0)})
    layers = layers_for(cloud, "c.ply", SceneOptions())
    assert [c.name for c in layers[0].colorings] == ["rgb", "normal", "height", "intensity", "solid"]
    assert [layer.name for layer in layers] == ["points", "normals"]
    assert not layers[1].visible  # glyphs start hidden unless asked for
    layers = layers_for(cloud, "c.ply", SceneOptions(color_by="intensity"))
    assert layers[0].current.name == "intensity"
    assert layers[0].add_mesh_kwargs()["scalars"] == "intensity"
    bare = PointCloud(p)
    assert layers_for(bare, "b.xyz", SceneOptions())[0].current.name == "height"
    with pytest.raises(ConfigError, match=r"b\.xyz: cannot colour by 'rgb'"):
        layers_for(bare, "b.xyz", SceneOptions(color_by="rgb"))


def test_normal_colours_and_glyphs():
    rgb = normals_to_rgb(np.array([[1, 0, 0], [0, -1, 0], [0, 0, 1]], np.float32))
    assert rgb.tolist() == [[255, 128, 128], [128, 0, 128], [128, 128, 255]]
    pts = np.zeros((10_000, 3))
    nrm = np.tile([0.0, 0.0, 1.0], (10_000, 1))
    g = normal_glyphs(pts, nrm, count=300, length=0.5)
    assert g.n_cells == 300
    seg = np.asarray(g.points).reshape(2, 300, 3)
    np.testing.assert_allclose(seg[1] - seg[0], np.tile([0, 0, 0.5], (300, 1)))


def test_mesh_styles_map_to_pyvista_options():
    s = trimesh.creation.icosphere(1)
    (layer,) = layers_for(Mesh(s.vertices, s.faces), "m.obj", SceneOptions(style="flat"))
    assert layer.add_mesh_kwargs()["smooth_shading"] is False
    layer.style = "smooth"
    assert layer.add_mesh_kwargs()["smooth_shading"] is True
    layer.style = "wireframe"
    assert layer.add_mesh_kwargs()["style"] == "wireframe"
    with pytest.raises(ConfigError, match="unknown mesh style"):
        layers_for(Mesh(s.vertices, s.faces), "m.obj", SceneOptions(style="toon"))


def test_distance_to_mesh_is_exact_point_to_triangle():
    sq = unit_square()
    pts = np.array([[0.2, 0.3, 0.25], [0.0, 0.0, -0.5], [2.0, 0.0, 0.0], [2.0, 2.0, 0.0]])
    d = distance_to_mesh(pts, sq)
    np.testing.assert_allclose(d, [0.25, 0.5, 1.0, np.sqrt(2)], atol=1e-9)


def test_error_colouring_and_gt_layer():
    s = trimesh.creation.icosphere(3)
    gt = Mesh(s.vertices, s.faces)
    v = s.vertices.copy()
    v[v[:, 0] > 0] *= 1.1
    panels = build_panels([("pred", Mesh(v, s.faces))], SceneOptions(gt=gt))
    mesh_layer, gt_layer = panels[0].layers
    assert mesh_layer.current.name == "error" and gt_layer.name == "gt" and not gt_layer.visible
    d = np.asarray(mesh_layer.dataset.point_data["distance to GT"])
    moved = v[:, 0] > 0
    np.testing.assert_allclose(d[~moved], 0.0, atol=1e-9)
    assert np.all(d[moved] > 0.09) and np.all(d[moved] < 0.1 + 1e-9)
    assert mesh_layer.current.clim == pytest.approx((0.0, 0.1), abs=2e-3)
    text = metrics_text(Mesh(v, s.faces), gt, n_samples=5000)
    assert text.startswith("Chamfer-L1 ") and "F@0.01" in text


def test_register_adapter_plugs_in_new_types():
    class Field:
        pass

    @register_adapter(Field)
    def field_layers(obj, label, options):
        import pyvista as pv

        return [Layer("field", pv.Sphere(), "surface")]

    panels = build_panels([("f", Field())], SceneOptions())
    assert [layer.name for layer in panels[0].layers] == ["field"]
    with pytest.raises(ConfigError, match="cannot show a dict"):
        layers_for({}, "x", SceneOptions())


def test_overlay_puts_everything_in_one_panel():
    s = trimesh.creation.icosphere(1)
    items = [("mesh", Mesh(s.vertices, s.faces)), ("rig", ring_cameras(5))]
    assert len(build_panels(items, SceneOptions())) == 2
    (panel,) = build_panels(items, SceneOptions(), overlay=True)
    assert [layer.name for layer in panel.layers] == ["mesh", "cameras"] and panel.title == "mesh + rig"


def test_has_display_rules():
    assert not has_display({}, "linux")
    assert has_display({"DISPLAY": ":0"}, "linux")
    assert has_display({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert has_display({}, "darwin") and has_display({}, "win32")


def test_load_input_kinds_and_errors(tmp_path):
    s = trimesh.creation.icosphere(2)
    s.export(tmp_path / "m.ply")
    s.export(tmp_path / "m.obj")
    np.savetxt(tmp_path / "p.xyz", s.vertices)
    assert isinstance(load_input(tmp_path / "m.ply"), Mesh)
    assert isinstance(load_input(tmp_path / "m.obj"), Mesh)
    cloud = load_input(tmp_path / "p.xyz")
    assert isinstance(cloud, PointCloud) and len(cloud) == len(s.vertices)
    assert resolve(("named", cloud)) == ("named", cloud)
    (tmp_path / "notes.docx").write_text("hello")
    with pytest.raises(ReconError, match=r"notes\.docx: the viewer cannot show '\.docx' files"):
        load_input(tmp_path / "notes.docx")
    with pytest.raises(InputError, match="no recognised camera format"):
        load_input(tmp_path)
    (tmp_path / "bad.ply").write_text("ply\nformat nonsense\n")
    with pytest.raises(ReconError, match=r"bad\.ply"):
        load_input(tmp_path / "bad.ply")


def test_sphere_rig_cameras_look_at_the_target():
    from recon_apps.viewer.rig import sphere_rig

    target = np.array([1.0, 2.0, 3.0])
    cams = sphere_rig(target, 5.0, 16, up=np.array([0.0, 1.0, 0.0]))
    centres = cams.cam_to_world[:, :3, 3]
    np.testing.assert_allclose(np.linalg.norm(centres - target, axis=1), 5.0)
    z = cams.cam_to_world[:, :3, 2]  # optical axis (OpenCV z forward)
    np.testing.assert_allclose(np.einsum("ij,ij->i", z, (target - centres) / 5.0), 1.0)
    assert np.all(centres[:, 1] > target[1])  # all above the target along +y
    R = cams.cam_to_world[:, :3, :3]
    np.testing.assert_allclose(np.einsum("cji,cjk->cik", R, R), np.tile(np.eye(3), (16, 1, 1)), atol=1e-12)
    assert np.all(np.linalg.det(R) > 0)


def test_points_against_gt_get_distance_colouring_and_text():
    rng = np.random.default_rng(5)
    xy = rng.uniform(-0.9, 0.9, size=(400, 2))
    cloud = PointCloud(np.column_stack([xy, np.full(400, 0.1)]))
    layers = layers_for(cloud, "c", SceneOptions(gt=unit_square()))
    assert layers[0].current.name == "error"
    np.testing.assert_allclose(layers[0].dataset.point_data["distance to GT"], 0.1, atol=1e-9)
    assert metrics_text(cloud, unit_square()) == "to GT: mean 0.1  p95 0.1  max 0.1"
