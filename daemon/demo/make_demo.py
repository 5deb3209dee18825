# Builds daemon/demo/demo.blend, the scene `npm run demo` renders:
#
#   blender -b --factory-startup --python daemon/demo/make_demo.py
#
# A cube turning on a checkered floor between a glossy sphere and a torus, 6 frames, Cycles on the
# CPU with few samples and no denoiser (Debian's Blender is built without OpenImageDenoise), 320x180.
# No external files: every texture is procedural, so the .blend is the whole project.
import math
import os

import bpy

HERE = os.path.dirname(os.path.abspath(__file__))
FRAMES = (1, 6)

bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.context.preferences.filepaths.save_version = 0
scene = bpy.context.scene
scene.name = "Demo"
scene.frame_start, scene.frame_end = FRAMES
scene.frame_current = FRAMES[0]

render = scene.render
render.engine = "CYCLES"
render.resolution_x, render.resolution_y, render.resolution_percentage = 320, 180, 100
render.filepath = "//render/demo_####"
render.image_settings.file_format = "PNG"
render.image_settings.color_mode = "RGB"
render.film_transparent = False
scene.cycles.device = "CPU"
scene.cycles.samples = 32
scene.cycles.use_adaptive_sampling = True
scene.cycles.use_denoising = False
scene.cycles.max_bounces = 4
scene.cycles.sample_clamp_indirect = 3.0  # no fireflies without a denoiser
scene.view_settings.view_transform = "Filmic"
scene.view_settings.look = "Medium High Contrast"


def material(name, color, roughness=0.4, metallic=0.0):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Metallic"].default_value = metallic
    return mat


def checker_material(name, color_a, color_b, scale):
    mat = material(name, color_a, roughness=0.6)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    checker = nodes.new("ShaderNodeTexChecker")
    checker.inputs["Color1"].default_value = (*color_a, 1.0)
    checker.inputs["Color2"].default_value = (*color_b, 1.0)
    checker.inputs["Scale"].default_value = scale
    links.new(checker.outputs["Color"], nodes["Principled BSDF"].inputs["Base Color"])
    return mat


def add(obj, mat, smooth=False):
    obj.data.materials.append(mat)
    if smooth:
        for polygon in obj.data.polygons:
            polygon.use_smooth = True
    return obj


bpy.ops.mesh.primitive_plane_add(size=20, location=(0, 0, 0))
add(bpy.context.object, checker_material("Floor", (0.8, 0.8, 0.78), (0.18, 0.2, 0.24), 12.0))

bpy.ops.mesh.primitive_cube_add(size=1.4, location=(0, 0, 0.9))
cube = add(bpy.context.object, material("Coral", (0.8, 0.1, 0.04), roughness=0.3))
cube.name = "Cube"
bevel = cube.modifiers.new("Bevel", "BEVEL")
bevel.width, bevel.segments = 0.08, 3
# A third of a turn with a hop over the six frames: every frame differs.
for frame in range(FRAMES[0], FRAMES[1] + 1):
    t = (frame - FRAMES[0]) / (FRAMES[1] - FRAMES[0])
    cube.rotation_euler = (0.0, 0.0, math.radians(120 * t))
    cube.location.z = 0.9 + 0.6 * math.sin(math.pi * t)
    cube.keyframe_insert("rotation_euler", frame=frame)
    cube.keyframe_insert("location", frame=frame)

bpy.ops.mesh.primitive_uv_sphere_add(radius=0.7, location=(-2.1, 0.6, 0.7), segments=48, ring_count=24)
add(bpy.context.object, material("Chrome", (0.75, 0.8, 0.9), roughness=0.08, metallic=1.0), smooth=True)

bpy.ops.mesh.primitive_torus_add(location=(2.1, 0.5, 0.3), major_radius=0.7, minor_radius=0.28)
add(bpy.context.object, material("Teal", (0.1, 0.6, 0.55), roughness=0.35), smooth=True)

bpy.ops.mesh.primitive_cone_add(radius1=0.45, depth=1.1, location=(1.9, 2.8, 0.55))
add(bpy.context.object, material("Gold", (1.0, 0.7, 0.2), roughness=0.25, metallic=1.0), smooth=True)

bpy.ops.object.light_add(type="SUN", location=(4, -4, 8), rotation=(math.radians(45), 0, math.radians(40)))
sun = bpy.context.object.data
sun.energy, sun.angle = 3.0, math.radians(8)
bpy.ops.object.light_add(type="AREA", location=(-4, -3, 4))
area = bpy.context.object
area.data.energy, area.data.size = 150, 4
area.rotation_euler = (math.radians(50), 0, math.radians(-50))

world = bpy.data.worlds.new("Sky")
world.use_nodes = True
world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.45, 0.6, 0.85, 1.0)
world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.6
scene.world = world

bpy.ops.object.camera_add(location=(0, -7.5, 3.6))
camera = bpy.context.object
camera.data.lens = 38
target = bpy.data.objects.new("CameraTarget", None)
scene.collection.objects.link(target)
target.location = (0, 0.6, 0.7)
track = camera.constraints.new("TRACK_TO")
track.target, track.track_axis, track.up_axis = target, "TRACK_NEGATIVE_Z", "UP_Y"
scene.camera = camera

bpy.ops.wm.save_as_mainfile(filepath=os.path.join(HERE, "demo.blend"), compress=True)
