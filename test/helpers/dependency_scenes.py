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


# Modifier caches ------------------------------------------------------------------------------------


def write_point_cache_file(path, fmt, vertices, frames):
    """A PC2 or MDD file (the Mesh Cache modifier's formats) moving `vertices` up over `frames`."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    samples = [[(x, y, z + 0.1 * frame) for x, y, z in vertices] for frame in range(frames)]
    with open(path, "wb") as handle:
        if fmt == "PC2":
            handle.write(struct.pack("<12siiffi", b"POINTCACHE2\0", 1, len(vertices), 0.0, 1.0, frames))
            for sample in samples:
                for co in sample:
                    handle.write(struct.pack("<3f", *co))
        else:
            handle.write(struct.pack(">2i", frames, len(vertices)))
            handle.write(struct.pack(">%df" % frames, *[frame / 24.0 for frame in range(frames)]))
            for sample in samples:
                for co in sample:
                    handle.write(struct.pack(">3f", *co))


def add_ocean(name, location, cache):
    ob = add_mesh(name, "plane", location)
    ocean = ob.modifiers.new("Ocean", "OCEAN")
    ocean.resolution = 1
    ocean.frame_start, ocean.frame_end = FRAMES
    ocean.filepath = cache
    # The waves move: "time" is animated, as in any ocean shot, so every frame evaluates the modifier.
    ocean.time = 1.0
    ocean.keyframe_insert("time", frame=FRAMES[0])
    ocean.time = 2.0
    ocean.keyframe_insert("time", frame=FRAMES[1])
    return ob


def add_mesh_cache(name, location, path, stored, fmt):
    ob = add_mesh(name, "plane", location)
    write_point_cache_file(path, fmt, [v.co[:] for v in ob.data.vertices], FRAMES[1] + 2)
    cache = ob.modifiers.new("Mesh Cache", "MESH_CACHE")
    cache.cache_format = fmt
    cache.filepath = stored
    return ob


def add_fluid(name, location, cache, bake):
    """A tiny smoke domain with its flow; `bake` bakes it (cache type All) into `cache`."""
    domain = add_mesh(name, "cube", location, 2.0)
    modifier = domain.modifiers.new("Fluid", "FLUID")
    modifier.fluid_type = "DOMAIN"
    settings = modifier.domain_settings
    settings.domain_type = "GAS"
    settings.resolution_max = 8
    settings.cache_type = "ALL"
    settings.cache_frame_start, settings.cache_frame_end = FRAMES
    if cache:
        settings.cache_directory = cache
    flow = add_mesh(name + " Flow", "ico", location, 0.6)
    flow_modifier = flow.modifiers.new("Fluid", "FLUID")
    flow_modifier.fluid_type = "FLOW"
    flow_modifier.flow_settings.flow_type = "SMOKE"
    flow_modifier.flow_settings.flow_behavior = "INFLOW"
    if bake:
        bpy.context.view_layer.objects.active = domain
        bpy.ops.fluid.bake_all()
    return domain, flow


def add_geometry_bake(name, location):
    """An object whose geometry-nodes Bake node is baked to disk (Blender 4.1+)."""
    ob = add_mesh(name, "cube", location, 0.5)
    modifier = ob.modifiers.new("GeometryNodes", "NODES")
    tree = bpy.data.node_groups.new(name + " tree", "GeometryNodeTree")
    tree.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    group_in = tree.nodes.new("NodeGroupInput")
    group_out = tree.nodes.new("NodeGroupOutput")
    bake = tree.nodes.new("GeometryNodeBake")
    if len(bake.bake_items) == 0:  # 5.x starts without items
        bake.bake_items.new("GEOMETRY", "Geometry")
    tree.links.new(group_in.outputs[0], bake.inputs[0])
    tree.links.new(bake.outputs[0], group_out.inputs[0])
    modifier.node_group = tree
    if hasattr(modifier, "bake_target"):
        modifier.bake_target = "DISK"  # 4.3+ would pack it into the .blend
    bpy.context.view_layer.objects.active = ob
    bpy.ops.object.geometry_node_bake_single(
        session_uid=ob.session_uid, modifier_name=modifier.name, bake_id=modifier.bakes[0].bake_id
    )
    return ob


def modifier_caches(base):
    """proj/fx/fx lib.blend: a baked ocean (maps in //ocean cache/, relative to the library), an unbaked
    one, a Mesh Cache reading //mesh cache/wave.pc2, a baked smoke domain (//smoke cache/), an unbaked
    domain, and on 4.1+ a geometry-nodes bake; proj/shots/fx shot.blend links them and has its own
    baked ocean, a Mesh Cache reading an MDD outside the project (absolute path) and a baked domain.
    Oceans are baked afterwards in a window (bakeOceans)."""
    project = os.path.join(base, "proj")
    outside = os.path.join(base, "outside")
    lib = os.path.join(project, "fx", "fx lib.blend")
    shot = os.path.join(project, "shots", "fx shot.blend")
    fluid = bool(ARGS.get("fluid", True))
    linked = ["Sea", "Sea Unbaked", "Wave"]

    empty_file(lib)
    add_ocean("Sea", (0, 0, 0), "//ocean cache/")
    add_ocean("Sea Unbaked", (3, 0, 0), "//unbaked ocean/")
    add_mesh_cache("Wave", (-3, 0, 0), os.path.join(project, "fx", "mesh cache", "wave.pc2"), "//mesh cache/wave.pc2", "PC2")
    if fluid:
        add_fluid("Smoke", (0, 3, 0), "//smoke cache", bake=True)
        add_fluid("Smoke Unbaked", (3, 3, 0), "", bake=False)
        linked += ["Smoke", "Smoke Flow", "Smoke Unbaked", "Smoke Unbaked Flow"]
    if VERSION >= (4, 1, 0):
        add_geometry_bake("Baker", (-3, 3, 0))
        linked.append("Baker")
    save(lib)

    empty_file(shot)
    add_ocean("Local Sea", (0, -3, 0), "//local ocean/")
    mdd = os.path.join(outside, "anim ü.mdd")
    add_mesh_cache("Local Wave", (3, -3, 0), mdd, mdd, "MDD")
    if fluid:
        add_fluid("Local Smoke", (-3, -3, 0), "//local smoke", bake=True)
    link(lib, objects=linked)
    save(shot)
    return {"blend": shot, "roots": [project, outside], "oceans": [lib, shot], "library": lib}


def bake_oceans_in_window():
    """Runs in a windowed Blender with the file open: bakes every local Ocean modifier, waits in the
    event loop until each is baked, saves and quits."""
    bpy.context.preferences.filepaths.save_version = 0
    oceans = [
        (ob, modifier)
        for ob in bpy.data.objects
        if ob.library is None
        for modifier in ob.modifiers
        if modifier.type == "OCEAN" and modifier.filepath and "Unbaked" not in ob.name
    ]
    for ob, modifier in oceans:
        with bpy.context.temp_override(object=ob, active_object=ob):
            bpy.ops.object.ocean_bake(modifier=modifier.name)
    state = {"ticks": 0}

    def wait():
        state["ticks"] += 1
        if all(modifier.is_cached for _, modifier in oceans) or state["ticks"] > 1200:
            if all(modifier.is_cached for _, modifier in oceans):
                bpy.ops.wm.save_mainfile()
                print("SKYFARM_OCEANS_BAKED %d" % len(oceans), flush=True)
            bpy.ops.wm.quit_blender()
            return None
        return 0.05

    bpy.app.timers.register(wait, first_interval=0.05)


# Scenes -------------------------------------------------------------------------------------------


def fluid_check(base):
    """A tiny smoke domain baked: whether this Blender can bake fluids at all."""
    empty_file(os.path.join(base, "fluid check.blend"))
    add_fluid("Check", (0, 0, 0), "//check cache", bake=True)
    data = os.path.join(base, "check cache", "data")
    if not os.path.isdir(data) or not os.listdir(data):
        raise RuntimeError("the bake wrote no data")
    return {"blend": os.path.join(base, "fluid check.blend"), "roots": [base]}


SCENES = {"point-caches": point_caches, "modifier-caches": modifier_caches, "fluid-check": fluid_check}


def main():
    if ARGS.get("bakeOceans"):
        bake_oceans_in_window()
        return
    built = SCENES[ARGS["scene"]](os.path.abspath(ARGS["base"]))
    print("SKYFARM_SCENES " + json.dumps(built), flush=True)


main()
