"""Records what a panel's draw() puts on screen, so `blender -b` tests can assert the panel's content.

Background Blender draws no UI, but the add-on's draw functions only call layout methods: this
stand-in layout records every label, property and operator with whether it is shown red (alert),
dimmed (active False) or disabled, inheriting those flags from enclosing rows, columns and boxes.
"""

import types

import bpy


class Recorder:
    def __init__(self, items, parent=None):
        self._items = items
        self._parent = parent
        self.alert = False
        self.active = True
        self.enabled = True

    # Flags that Blender applies to everything inside a layout.
    def _flag(self, name):
        node, value = self, getattr(self, name)
        while node is not None:
            value = getattr(node, name)
            if (name == "alert" and value) or (name != "alert" and not value):
                return value
            node = node._parent
        return value

    def _record(self, kind, **fields):
        fields.update(kind=kind, alert=self._flag("alert"), active=self._flag("active"), enabled=self._flag("enabled"))
        self._items.append(fields)

    def _child(self, *args, **kwargs):
        return Recorder(self._items, self)

    row = column = box = split = column_flow = grid_flow = _child

    def label(self, text="", icon="NONE", **kwargs):
        self._record("label", text=text, icon=icon)

    def prop(self, data, name, text=None, **kwargs):
        if text is None:
            text = data.bl_rna.properties[name].name
        self._record("prop", name=name, text=text, value=getattr(data, name), slider=kwargs.get("slider", False))

    def prop_enum(self, data, name, value, **kwargs):
        self._record("prop_enum", name=name, value=value)

    def _progress(self, factor=0.0, type="BAR", text=""):
        self._record("progress", factor=factor, text=text)

    # Only where Blender's own layouts have it (4.0+), so the 3.x fallback is what gets drawn on 3.x.
    # (RNA functions are not attributes of the bpy.types class: hasattr() on it is always False.)
    if "progress" in bpy.types.UILayout.bl_rna.functions:
        progress = _progress

    def operator(self, idname, text="", icon="NONE", **kwargs):
        self._record("operator", idname=idname, text=text)
        return types.SimpleNamespace()

    def separator(self, **kwargs):
        pass

    def template_list(self, *args, **kwargs):
        self._record("template_list")


def draw(draw_function, *args):
    """Runs draw_function(layout, *args) against a recorder and returns the recorded items."""
    items = []
    draw_function(Recorder(items), *args)
    return items


def draw_panel(panel_class, context):
    """Runs a Panel class's draw() with a recording layout."""
    items = []
    panel_class.draw(types.SimpleNamespace(layout=Recorder(items)), context)
    return items


def text_of(items, **where):
    """The labels (and property texts) matching `where`, joined like wrapped lines are read."""
    chosen = [item for item in items if item["kind"] in ("label", "prop", "progress") and all(item.get(k) == v for k, v in where.items())]
    return " ".join(item["text"] for item in chosen if item.get("text"))
