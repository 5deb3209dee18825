# Builds the dependency test scenes with the Blender under test (test/helpers/dependency-scenes.ts).
#
#   blender -b --factory-startup --python-exit-code 1 --python dependency_scenes.py -- '<json>'
#   DISPLAY=:N blender --factory-startup FILE.blend --python dependency_scenes.py -- '{"bakeOceans": true}'
#
# JSON: {"scene": "point-caches" | "modifier-caches" | "sequences" | "edit", "base": folder}. Every
# cache, sequence and tile is written by Blender itself (bakes, image saves, renders); the script prints
# SKYFARM_SCENES <json> with what it built. An Ocean bake finishes only in Blender's event loop (a WM
# job; in -b its files are written but the modifier never becomes "baked"), so oceans are baked in a
# second, windowed run (under Xvfb) with {"bakeOceans": true}.
import json
import math
import os
import shutil
import struct
import sys
import wave

import bpy

ARGS = json.loads(sys.argv[sys.argv.index("--") + 1])
VERSION = bpy.app.version
FRAMES = (1, 3)


def empty_file(path):
    """A new file saved at `path` (relative paths need its folder), tiny and fast to render."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.save_version = 0  # no .blend1 backups
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = FRAMES
    scene.frame_current = FRAMES[0]
    render = scene.render
    render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 1
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.use_denoising = False  # Debian's Cycles has no OpenImageDenoise
    render.resolution_x, render.resolution_y, render.resolution_percentage = 16, 16, 100
    render.filepath = "//render/frame_####"
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.location = (0, -12, 4)
    camera.rotation_euler = (math.radians(75), 0, 0)
    scene.collection.objects.link(camera)
    scene.camera = camera
    save(path)
    return scene


def save(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=path)


def add_mesh(name, kind="plane", location=(0, 0, 0), size=1.0):
    if kind == "plane":
        bpy.ops.mesh.primitive_plane_add(size=size, location=location)
    elif kind == "grid":
        bpy.ops.mesh.primitive_grid_add(x_subdivisions=4, y_subdivisions=4, size=size, location=location)
    elif kind == "ico":
        bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=1, radius=size / 2, location=location)
    else:
        bpy.ops.mesh.primitive_cube_add(size=size, location=location)
    ob = bpy.context.object
    ob.name = name
    ob.data.name = name
    return ob


def frames_of(cache):
    cache.frame_start, cache.frame_end = FRAMES


def bake_point_caches():
    bpy.ops.ptcache.bake_all(bake=True)


def link(library, objects=(), collections=(), relative=True):
    """Links objects/collections from `library` into the current scene (relative path by default)."""
    path = bpy.path.relpath(library) if relative else library
    with bpy.data.libraries.load(path, link=True, relative=relative) as (source, target):
        target.objects = list(objects)
        target.collections = list(collections)
    scene = bpy.context.scene
    for ob in target.objects:
        scene.collection.objects.link(ob)
    for collection in target.collections:
        scene.collection.children.link(collection)


def write_png(path, size=4, shade=0.5):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = bpy.data.images.new("pixels", size, size)
    pixels.pixels = [shade if i % 4 < 3 else 1.0 for i in range(size * size * 4)]
    pixels.filepath_raw = path
    pixels.file_format = "PNG"
    pixels.save()
    bpy.data.images.remove(pixels)


def textured(ob, images):
    """A material on `ob` that really samples every image (all mixed into the colour)."""
    material = bpy.data.materials.new(ob.name + " material")
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    shader = nodes["Principled BSDF"]
    previous = None
    for image in images:
        node = nodes.new("ShaderNodeTexImage")
        node.image = image
        if image.source == "SEQUENCE":
            node.image_user.frame_duration = FRAMES[1] - FRAMES[0] + 1
            node.image_user.frame_start = FRAMES[0]
            node.image_user.use_auto_refresh = True
        if previous is None:
            previous = node.outputs["Color"]
            continue
        mix = nodes.new("ShaderNodeMixRGB")
        links.new(previous, mix.inputs[1])
        links.new(node.outputs["Color"], mix.inputs[2])
        previous = mix.outputs["Color"]
    if previous is not None:
        links.new(previous, shader.inputs["Base Color"])
    ob.data.materials.clear()
    ob.data.materials.append(material)


# Point caches ---------------------------------------------------------------------------------------


def point_caches(base):
    """proj/lib/sim lib.blend holds simulated objects with baked disk caches (cloth with a non-ASCII
    name, particles, a named soft body cache, dynamic paint, a stale stored path, an external cache,
    one that reads beside the shot, one never baked); proj/lib/set.blend links two of them again;
    proj/shots/shot.blend links them directly and through set.blend, links a baked emitter from a
    library outside the project (absolute path) and bakes a local cloth of its own."""
    project = os.path.join(base, "proj")
    lib = os.path.join(project, "lib", "sim lib.blend")
    set_lib = os.path.join(project, "lib", "set.blend")
    shot = os.path.join(project, "shots", "shot.blend")
    outside = os.path.join(base, "outside", "ext lib.blend")

    empty_file(lib)
    cloth = add_mesh("Tüch", "grid", (0, 0, 2))
    frames_of(cloth.modifiers.new("Cloth", "CLOTH").point_cache)
    cloth.modifiers["Cloth"].point_cache.use_disk_cache = True
    emitter = add_mesh("Emitter", "cube", (2, 0, 0), 0.5)
    emitter.modifiers.new("Particles", "PARTICLE_SYSTEM")
    system = emitter.particle_systems[0]
    system.settings.count, system.settings.frame_start, system.settings.frame_end = 20, 1, 3
    frames_of(system.point_cache)
    system.point_cache.use_disk_cache = True
    soft = add_mesh("Soft", "ico", (-2, 0, 1))
    soft_cache = soft.modifiers.new("Softbody", "SOFT_BODY").point_cache
    frames_of(soft_cache)
    soft_cache.use_disk_cache = True
    soft_cache.name = "soft body"
    canvas = add_mesh("Canvas", "grid", (0, 2, 0))
    paint = canvas.modifiers.new("Dynamic Paint", "DYNAMIC_PAINT")
    bpy.context.view_layer.objects.active = canvas
    bpy.ops.dpaint.type_toggle(type="CANVAS")
    surface = paint.canvas_settings.canvas_surfaces[0]
    surface.frame_start, surface.frame_end = FRAMES
    frames_of(surface.point_cache)
    surface.point_cache.use_disk_cache = True
    stale = add_mesh("Stale", "grid", (0, -2, 2))
    stale_cache = stale.modifiers.new("Cloth", "CLOTH").point_cache
    frames_of(stale_cache)
    stale_cache.use_disk_cache = True
    # A folder typed in while "External" was on stays stored when it is turned off; Blender ignores it.
    stale_cache.use_external = True
    stale_cache.filepath = "//stale folder/"
    stale_cache.use_external = False
    outer = add_mesh("Outer", "cube", (4, 0, 0), 0.5)
    outer.modifiers.new("Particles", "PARTICLE_SYSTEM")
    outer_system = outer.particle_systems[0]
    outer_system.settings.count, outer_system.settings.frame_start, outer_system.settings.frame_end = 10, 1, 3
    frames_of(outer_system.point_cache)
    outer_system.point_cache.use_disk_cache = True
    outer_system.point_cache.name = "drops"
    beside = add_mesh("Beside Shot", "grid", (0, 4, 2))
    beside_cache = beside.modifiers.new("Cloth", "CLOTH").point_cache
    frames_of(beside_cache)
    beside_cache.use_disk_cache = True
    bake_point_caches()
    unbaked = add_mesh("Unbaked", "grid", (0, -4, 2))
    unbaked_cache = unbaked.modifiers.new("Cloth", "CLOTH").point_cache
    frames_of(unbaked_cache)
    unbaked_cache.use_disk_cache = True
    # The external cache: Blender's own bake files, moved to a folder the cache then reads as external.
    cache_dir = os.path.join(project, "lib", "blendcache_sim lib")
    external_dir = os.path.join(project, "lib", "ext cache")
    os.makedirs(external_dir, exist_ok=True)
    for name in os.listdir(cache_dir):
        if name.startswith("drops_"):
            shutil.move(os.path.join(cache_dir, name), os.path.join(external_dir, name))
    outer_system.point_cache.use_external = True
    outer_system.point_cache.filepath = "//ext cache/"
    # "Library Path" off: linked into the shot, the cache is read beside the shot, under its name.
    beside_cache.use_library_path = False
    shot_cache = os.path.join(project, "shots", "blendcache_shot")
    os.makedirs(shot_cache, exist_ok=True)
    prefix = "".join("%02X" % byte for byte in "Beside Shot".encode("utf-8"))
    for name in os.listdir(cache_dir):
        if name.startswith(prefix + "_"):
            shutil.move(os.path.join(cache_dir, name), os.path.join(shot_cache, name))
    save(lib)

    empty_file(set_lib)
    collection = bpy.data.collections.new("Set")
    bpy.context.scene.collection.children.link(collection)
    with bpy.data.libraries.load("//sim lib.blend", link=True, relative=True) as (source, target):
        target.objects = ["Soft", "Canvas"]
    for ob in target.objects:
        collection.objects.link(ob)
    save(set_lib)

    empty_file(outside)
    far = add_mesh("Far", "cube", (-4, 0, 0), 0.5)
    far.modifiers.new("Particles", "PARTICLE_SYSTEM")
    far_system = far.particle_systems[0]
    far_system.settings.count, far_system.settings.frame_start, far_system.settings.frame_end = 10, 1, 3
    frames_of(far_system.point_cache)
    far_system.point_cache.use_disk_cache = True
    bake_point_caches()
    save(outside)

    empty_file(shot)
    flag = add_mesh("Flag", "grid", (0, 0, 4))
    flag_cache = flag.modifiers.new("Cloth", "CLOTH").point_cache
    frames_of(flag_cache)
    flag_cache.use_disk_cache = True
    bake_point_caches()  # before linking: bake_all would bake the linked unbaked cloth too
    link(lib, objects=["Tüch", "Emitter", "Stale", "Outer", "Beside Shot", "Unbaked"])
    link(set_lib, collections=["Set"])
    link(outside, objects=["Far"], relative=False)
    save(shot)
    return {"blend": shot, "roots": [project, os.path.dirname(outside)]}


# Scenes -------------------------------------------------------------------------------------------


SCENES = {"point-caches": point_caches}


def main():
    built = SCENES[ARGS["scene"]](os.path.abspath(ARGS["base"]))
    print("SKYFARM_SCENES " + json.dumps(built), flush=True)


main()
