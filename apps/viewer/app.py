"""The viewer window: panels side by side with linked cameras, keys, picking and overlays.

:class:`Viewer` draws :class:`~recon_apps.viewer.scene.Panel` objects into one
``pyvista.Plotter`` (a grid of sub-windows). The same object backs the interactive
window, off-screen screenshots and the web mode; every key's action is a plain method
so it can be called (and tested) without a window.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyvista as pv
from PIL import Image

from recon.io.atomic import atomic_write

from recon_apps.viewer.scene import MESH_STYLES, Layer, Panel, SceneOptions, field_layers

BACKGROUND = "#1f2124"
TEXT_COLOR = "#e8e8e8"
PANEL_SIZE = (800, 640)

# key -> layer names it toggles; letters avoid VTK's own keys (e, f, j, p, q, r, s, t, u, w, 3).
LAYER_KEYS: dict[str, tuple[str, ...]] = {
    "o": ("points", "mesh"),
    "n": ("normals",),
    "g": ("gt",),
    "k": ("cameras",),
    "x": ("gaussians", "centres"),  # Gaussians: ellipsoids <-> centres
}


def grid_shape(n: int, max_cols: int = 3) -> tuple[int, int]:
    """(rows, cols) for ``n`` panels, at most ``max_cols`` per row."""
    cols = max(1, min(n, max_cols))
    return int(math.ceil(n / cols)), cols


def _quiet_vtk_without_display() -> None:
    """Without a display VTK first tries X11, logs "bad X server connection", then renders
    through EGL/OSMesa anyway: keep only its errors on stderr."""
    from recon_apps.viewer.display import has_display

    if not has_display():
        from vtkmodules.vtkCommonCore import vtkLogger

        vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_ERROR)


class Viewer:
    """Panels drawn into one plotter.

    Args:
        panels: what to draw, one sub-window each.
        off_screen: render without a window (screenshots, tests, web mode).
        window_size: (width, height) in pixels; default 800x640 per panel (at most 3 per row).
        show_help: show the key-help overlay from the start.
        title: window title.
        up: the world's up direction; the default view looks down on the scene obliquely with it up.
        options: how the inputs were turned into layers (used again when a saved field is re-meshed).
    """

    def __init__(self, panels: Sequence[Panel], *, off_screen: bool = False,
                 window_size: tuple[int, int] | None = None, show_help: bool = True,
                 title: str = "recon view", up: Sequence[float] = (0.0, 0.0, 1.0),
                 options: SceneOptions | None = None) -> None:
        if not panels:
            raise ValueError("nothing to show")
        self.panels = list(panels)
        self.title = title
        self.up = np.asarray(up, dtype=np.float64)
        self.rows, self.cols = grid_shape(len(self.panels))
        if off_screen:
            _quiet_vtk_without_display()
        if window_size is None:
            window_size = (min(PANEL_SIZE[0] * self.cols, 1800), PANEL_SIZE[1] * self.rows)
        self.plotter = pv.Plotter(shape=(self.rows, self.cols), off_screen=off_screen,
                                  window_size=list(window_size), border=len(self.panels) > 1,
                                  title=title)
        self.plotter.set_background(BACKGROUND)
        self.actors: dict[tuple[int, int], pv.Actor] = {}
        self.help_visible = show_help
        self.options = options or SceneOptions()
        self.picked: np.ndarray | None = None
        self._unify_ranges()
        for pi, panel in enumerate(self.panels):
            self._select(pi)
            for li in range(len(panel.layers)):
                self._draw(pi, li)
            if panel.title:
                self.plotter.add_text(panel.title, position="upper_left", font_size=10, color=TEXT_COLOR,
                                      name=f"title{pi}")
            if panel.text:
                self.plotter.add_text(panel.text, position="upper_right", font_size=9, color=TEXT_COLOR,
                                      name=f"metrics{pi}")
        if len(self.panels) > 1:
            self.plotter.link_views()
        self._draw_help()
        self._add_field_sliders()
        self.reset_camera()

    # ------------------------------------------------------------ drawing

    def _select(self, pi: int) -> None:
        self.plotter.subplot(pi // self.cols, pi % self.cols)

    def _unify_ranges(self) -> None:
        """Colourings that share a scalar bar (same title) share one range, so the one bar
        tells the truth for every panel: error maps run from 0 to the largest top, other
        scalars over the union of the data ranges."""
        groups: dict[str, list[tuple[Layer, object]]] = {}
        for p in self.panels:
            for layer in p.layers:
                for c in layer.colorings:
                    if c.bar and c.scalars and not c.rgb:
                        groups.setdefault(c.bar, []).append((layer, c))
        for members in groups.values():
            if len(members) < 2:
                continue
            if all(c.name == "error" and c.clim is not None for _, c in members):
                top = max(c.clim[1] for _, c in members)
                for _, c in members:
                    c.clim = (0.0, top)
                continue
            lo, hi = np.inf, -np.inf
            for layer, c in members:
                values = np.asarray(layer.dataset.point_data[c.scalars], dtype=np.float64)
                finite = values[np.isfinite(values)]
                if c.clim is not None:
                    lo, hi = min(lo, c.clim[0]), max(hi, c.clim[1])
                elif finite.size:
                    lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
            if np.isfinite(lo) and np.isfinite(hi):
                for _, c in members:
                    c.clim = (lo, hi if hi > lo else lo + 1.0)

    def _draw(self, pi: int, li: int) -> None:
        """(Re)draw layer ``li`` of panel ``pi`` in its current state."""
        layer = self.panels[pi].layers[li]
        self._select(pi)
        name = f"p{pi}l{li}"
        old = self.actors.pop((pi, li), None)
        if old is not None:
            self.plotter.remove_actor(old, reset_camera=False, render=False)
        self._sync_scalar_bars()
        if not layer.visible:
            return
        kw = layer.add_mesh_kwargs()
        bar = kw.get("show_scalar_bar", False)
        if bar and kw["scalar_bar_args"]["title"] in self.plotter.scalar_bars:
            kw["show_scalar_bar"] = False  # shared title: pyvista links the mappers to one bar
        self.actors[(pi, li)] = self.plotter.add_mesh(layer.dataset, name=name, render=False, **kw)

    def _sync_scalar_bars(self) -> None:
        """Drop scalar bars that no visible layer uses any more."""
        wanted = {layer.current.bar for p in self.panels for layer in p.layers
                  if layer.visible and layer.current.bar and not layer.current.rgb}
        for title in list(self.plotter.scalar_bars.keys()):
            if title not in wanted:
                self.plotter.remove_scalar_bar(title, render=False)

    def help_text(self) -> str:
        """The key-help overlay, listing only the layers and colourings present."""
        names = {layer.name for p in self.panels for layer in p.layers}
        lines = ["h  show/hide this help"]
        for key, layer_names in LAYER_KEYS.items():
            present = [n for n in layer_names if n in names]
            if present:
                lines.append(f"{key}  show/hide {' / '.join(present)}")
        colorings = []
        for p in self.panels:
            for layer in p.layers:
                if layer.name in ("points", "mesh"):
                    colorings += [c.name for c in layer.colorings if c.name not in colorings]
        if len(colorings) > 1:
            lines.append(f"c  colour by: {' > '.join(colorings)}")
        if "mesh" in names:
            lines.append(f"m  mesh style: {' > '.join(MESH_STYLES)}")
        lines.append("r  reset camera")
        lines.append("right-click or p  pick a point (shows x, y, z)")
        lines.append("q  quit")
        return "\n".join(lines)

    def _draw_help(self) -> None:
        self._select(0)
        if self.help_visible:
            self.plotter.add_text(self.help_text(), position="lower_left", font_size=8, color=TEXT_COLOR,
                                  name="help")
        else:
            self.plotter.remove_actor("help", render=False)

    def layers(self, names: Sequence[str] | None = None) -> list[tuple[int, int, Layer]]:
        """``(panel index, layer index, layer)`` for layers whose name is in ``names`` (all if None)."""
        return [(pi, li, layer) for pi, p in enumerate(self.panels) for li, layer in enumerate(p.layers)
                if names is None or layer.name in names]

    # ------------------------------------------------------------ saved fields

    def field_layers(self) -> list[tuple[int, int, Layer]]:
        """The layers made from a saved field (they can be re-meshed)."""
        return [(pi, li, layer) for pi, li, layer in self.layers() if layer.source is not None]

    def set_field(self, level: float | None = None, trim_distance: float | None = None) -> list[int]:
        """Re-mesh every saved field at a new iso-level (world units) and/or trimming distance
        (finest voxels, 0 = off), keeping each layer's colouring, style and visibility.
        Returns the new face counts."""
        counts = []
        for pi, li, old in self.field_layers():
            src = old.source
            if level is not None:
                src.level = float(level)
            if trim_distance is not None:
                src.trim_distance = float(trim_distance)
            new = field_layers(src, self.panels[pi].title, self.options)[0]
            names = [c.name for c in new.colorings]
            if old.current.name in names:
                new.coloring = names.index(old.current.name)
            new.style, new.visible = old.style, old.visible
            self.panels[pi].layers[li] = new
            self._draw(pi, li)
            counts.append(int(new.dataset.n_cells))
        self._render()
        return counts

    def _add_field_sliders(self) -> None:
        """Iso-level and trimming sliders (bottom of the first panel) when a saved field is shown."""
        found = self.field_layers()
        if not found:
            return
        src = found[0][2].source
        lo, hi = src.level_range()
        self._select(0)
        common = {"style": "modern", "interaction_event": "end", "title_height": 0.02, "slider_width": 0.02,
                  "tube_width": 0.004, "fmt": "%.3g", "color": TEXT_COLOR}
        self.plotter.add_slider_widget(lambda v: self.set_field(level=v), [lo, hi], value=src.level,
                                       title="iso-level", pointa=(0.55, 0.16), pointb=(0.95, 0.16), **common)
        self.plotter.add_slider_widget(lambda v: self.set_field(trim_distance=v), [0.0, 8.0],
                                       value=src.trim_distance, title="trim (voxels, 0 = off)",
                                       pointa=(0.55, 0.06), pointb=(0.95, 0.06), **common)

    # ------------------------------------------------------------ actions (one per key)

    def toggle_layers(self, names: Sequence[str]) -> bool:
        """Show/hide all layers with these names (together: all shown if any was hidden).
        Returns the new visibility."""
        found = self.layers(names)
        if not found:
            return False
        visible = not all(layer.visible for _, _, layer in found)
        for pi, li, layer in found:
            layer.visible = visible
            self._draw(pi, li)
        self._render()
        return visible

    def cycle_coloring(self) -> list[str]:
        """Next colouring of every point and mesh layer; returns the new colouring names."""
        names = []
        for pi, li, layer in self.layers(("points", "mesh")):
            layer.coloring = (layer.coloring + 1) % len(layer.colorings)
            names.append(layer.current.name)
            self._draw(pi, li)
        self._render()
        return names

    def cycle_style(self) -> str | None:
        """Next mesh style (smooth > flat > wireframe) for all mesh layers; returns it."""
        style = None
        for pi, li, layer in self.layers(("mesh",)):
            style = MESH_STYLES[(MESH_STYLES.index(layer.style) + 1) % len(MESH_STYLES)]
            layer.style = style
            self._draw(pi, li)
        self._render()
        return style

    def toggle_help(self) -> bool:
        """Show/hide the key-help overlay; returns the new state."""
        self.help_visible = not self.help_visible
        self._draw_help()
        self._render()
        return self.help_visible

    def reset_camera(self) -> None:
        """Fit all panels' contents (linked panels share one camera)."""
        for pi in range(len(self.panels)):
            self._select(pi)
            self.plotter.view_vector(self.view_direction(), viewup=self.up, render=False)
            self.plotter.reset_camera(render=False)
        self._render()

    def view_direction(self) -> np.ndarray:
        """From the scene towards the default camera: above (along ``up``) and off both other axes."""
        return self.up + (1.0 - np.abs(self.up))

    def on_pick(self, point: Sequence[float]) -> str:
        """Show the picked point's coordinates at the top of the first panel; returns the text."""
        p = np.asarray(point, dtype=np.float64).reshape(3)
        self.picked = p
        text = f"picked  x {p[0]:.6g}  y {p[1]:.6g}  z {p[2]:.6g}"
        fields = self.field_layers()
        if fields:
            text += f"  field {fields[0][2].source.value_at(p):.4g}"
        self._select(0)
        self.plotter.add_text(text, position="upper_edge", font_size=9, color=TEXT_COLOR, name="picked")
        self._render()
        return text

    def key_actions(self) -> dict[str, Callable[[], object]]:
        """Key -> action, as bound in the interactive window."""
        actions: dict[str, Callable[[], object]] = {
            "h": self.toggle_help,
            "c": self.cycle_coloring,
            "m": self.cycle_style,
            "r": self.reset_camera,
        }
        for key, names in LAYER_KEYS.items():
            actions[key] = (lambda names=names: self.toggle_layers(names))
        return actions

    def web_actions(self) -> list[tuple[str, Callable[[], object]]]:
        """Toolbar buttons for the web page: the key actions that apply to this scene."""
        names = {layer.name for _, _, layer in self.layers()}
        out: list[tuple[str, Callable[[], object]]] = []
        if any(len(layer.colorings) > 1 for _, _, layer in self.layers(("points", "mesh"))):
            out.append(("colour", self.cycle_coloring))
        if "mesh" in names:
            out.append(("style", self.cycle_style))
        for label, layer_names in (("normals", ("normals",)), ("GT", ("gt",)), ("cameras", ("cameras",))):
            if names & set(layer_names):
                out.append((label, lambda layer_names=layer_names: self.toggle_layers(layer_names)))
        out.append(("reset", self.reset_camera))
        return out

    def _render(self) -> None:
        if getattr(self.plotter, "ren_win", None) is not None and getattr(self.plotter, "_rendered", False):
            self.plotter.render()

    # ------------------------------------------------------------ output

    def bind_keys(self) -> None:
        """Bind :meth:`key_actions` and point picking (``p``) in an interactive window."""
        for key, action in self.key_actions().items():
            self.plotter.add_key_event(key, lambda action=action: action())
        self.plotter.enable_point_picking(callback=self.on_pick, show_message=False, show_point=True,
                                          color="orangered", point_size=12, left_clicking=False)

    def show(self) -> None:
        """Open the interactive window (blocks until it is closed)."""
        self.bind_keys()
        self.plotter.show(title=self.title)

    def screenshot(self, path: str | Path | None = None) -> np.ndarray:
        """Render off-screen and return the (H, W, 3) uint8 image; also write a PNG to ``path`` (atomically)."""
        img = np.asarray(self.plotter.screenshot(None, return_img=True))
        if path is not None:
            with atomic_write(path) as tmp:
                Image.fromarray(img).save(tmp, format="PNG")
        return img[..., :3]

    def close(self) -> None:
        self.plotter.close()


__all__ = ["BACKGROUND", "LAYER_KEYS", "Viewer", "grid_shape"]
