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
    spray = add_mesh("Spray", "cube", (-4, 2, 0), 0.5)
    spray.modifiers.new("Particles", "PARTICLE_SYSTEM")
    spray_system = spray.particle_systems[0]
    spray_system.settings.count, spray_system.settings.frame_start, spray_system.settings.frame_end = 10, 1, 3
    frames_of(spray_system.point_cache)
    spray_system.point_cache.use_disk_cache = True
    spray_system.point_cache.name = "spray"
    bake_point_caches()  # before linking: bake_all would bake the linked unbaked cloth too
    # An external cache in a folder outside the project, by absolute path.
    absolute_cache = os.path.join(base, "outside", "abs cache")
    os.makedirs(absolute_cache, exist_ok=True)
    for name in os.listdir(os.path.join(project, "shots", "blendcache_shot")):
        if name.startswith("spray_"):
            shutil.move(os.path.join(project, "shots", "blendcache_shot", name), os.path.join(absolute_cache, name))
    spray_system.point_cache.use_external = True
    spray_system.point_cache.filepath = absolute_cache + os.sep
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


def add_geometry_bake(name, location, directory=""):
    """An object whose geometry-nodes Bake node is baked to disk (Blender 4.1+), into `directory`
    (else Blender's default, //blendcache_<file>/<object>_<modifier>)."""
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
    if directory:
        modifier.bake_directory = directory
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
    # The shot's own caches live outside the project, named by absolute paths.
    add_ocean("Local Sea", (0, -3, 0), os.path.join(outside, "local ocean") + os.sep)
    mdd = os.path.join(outside, "anim ü.mdd")
    add_mesh_cache("Local Wave", (3, -3, 0), mdd, mdd, "MDD")
    if fluid:
        add_fluid("Local Smoke", (-3, -3, 0), os.path.join(outside, "local smoke"), bake=True)
    if VERSION >= (4, 1, 0):
        add_geometry_bake("Local Baker", (-3, -6, 0), os.path.join(outside, "gn bake"))
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


# Sequences, tiles and files of every other kind -------------------------------------------------------


def write_movie(path):
    """A 3-frame movie (Matroska, PNG codec) rendered by Blender itself."""
    empty_file(os.path.join(os.path.dirname(path), "movie maker.blend"))
    scene = bpy.context.scene
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):
        settings.media_type = "VIDEO"  # 5.x: before FFMPEG can be chosen
    settings.file_format = "FFMPEG"
    scene.render.ffmpeg.format = "MKV"
    scene.render.ffmpeg.codec = "PNG"
    scene.render.filepath = path
    scene.render.use_file_extension = False
    bpy.ops.render.render(animation=True)
    os.remove(os.path.join(os.path.dirname(path), "movie maker.blend"))


def write_wav(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with wave.open(path, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(8000)
        handle.writeframes(b"\0\0" * 800)


def write_ies(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="ascii") as handle:
        handle.write("IESNA:LM-63-2002\nTILT=NONE\n1 1000 1 3 1 1 2 0 0 0\n1 1 100\n0 45 90\n0\n1000 800 100\n")


def load_image(path, stored=None, source=None):
    image = bpy.data.images.load(path, check_existing=False)
    if source:
        image.source = source
    image.filepath = stored if stored is not None else bpy.path.relpath(path)
    return image


def uv_over_tiles(ob, tiles):
    """UVs of a grid spread over `tiles` UDIM tiles side by side, so Cycles really samples each."""
    layer = ob.data.uv_layers.active or ob.data.uv_layers.new()
    for loop in ob.data.loops:
        u, v = layer.data[loop.index].uv
        layer.data[loop.index].uv = (u * tiles, v)


def sequences(base):
    """Files of every other kind, local and linked (directly and indirectly), with spaces and
    non-ASCII names, one outside the project and one missing:

    proj/assets/deep/deep.blend   Deep: a text object with //fonts/mono ü.woff2 and the sequence
                                  //../../tex/shot.0001.png (digits before the extension)
    proj/assets/props.blend       Prop: links Deep; the sequence //../tex/seq ü/render_0001_beauty.png
                                  (frame mid-name) and the UDIM set //../tex/udim/skin.<UDIM>.png
                                  (tiles 1001-1002; skin.1003.png lies beside it, not a tile)
    proj/shots/shot.blend         links Prop; a texture outside the project (absolute), a missing one,
                                  a movie as a texture, an IES light, volumes (when this Blender can
                                  bake one): a .vdb sequence and a numbered file that is no sequence
    proj/shots/edit.blend         the sequencer: image strip, movie strip, movie clip strip (a PNG
                                  sequence), sound strip
    """
    project = os.path.join(base, "proj")
    outside = os.path.join(base, "outside")
    tex = os.path.join(project, "tex")
    deep = os.path.join(project, "assets", "deep", "deep.blend")
    props = os.path.join(project, "assets", "props.blend")
    shot = os.path.join(project, "shots", "shot.blend")
    edit = os.path.join(project, "shots", "edit.blend")
    with_volumes = bool(ARGS.get("volumes"))

    # Files every scene uses, written by Blender.
    empty_file(os.path.join(base, "scratch.blend"))
    for frame in range(FRAMES[0], FRAMES[1] + 1):
        write_png(os.path.join(tex, "seq ü", "render_%04d_beauty.png" % frame), shade=0.2 * frame)
        write_png(os.path.join(tex, "shot.%04d.png" % frame), shade=0.1 * frame)
        write_png(os.path.join(project, "plates", "plate_%04d.png" % frame), 8, 0.3 * frame)
    for tile in (1001, 1002):
        write_png(os.path.join(tex, "udim", "skin.%d.png" % tile), shade=(tile - 1000) / 3)
    write_png(os.path.join(tex, "größe ü.png"), shade=0.7)
    write_png(os.path.join(outside, "shared tex.png"), shade=0.9)
    write_wav(os.path.join(project, "sounds", "beep.wav"))
    write_ies(os.path.join(project, "ies", "spot light.ies"))
    fonts = bpy.utils.system_resource("DATAFILES", path="fonts")
    os.makedirs(os.path.join(project, "assets", "deep", "fonts"), exist_ok=True)
    shutil.copy(os.path.join(fonts, "DejaVuSansMono.woff2"), os.path.join(project, "assets", "deep", "fonts", "mono ü.woff2"))
    write_movie(os.path.join(project, "movies", "clip.mkv"))
    os.remove(os.path.join(base, "scratch.blend"))

    empty_file(deep)
    font = bpy.data.fonts.load(os.path.join(project, "assets", "deep", "fonts", "mono ü.woff2"))
    font.filepath = "//fonts/mono ü.woff2"
    curve = bpy.data.curves.new("Deep Text", "FONT")
    curve.body = "Hi"
    curve.font = font
    text = bpy.data.objects.new("Deep", curve)
    collection = bpy.data.collections.new("Deep")
    bpy.context.scene.collection.children.link(collection)
    collection.objects.link(text)
    card = add_mesh("Deep Card", "plane", (0, 0, 1))
    bpy.context.scene.collection.objects.unlink(card)
    collection.objects.link(card)
    textured(card, [load_image(os.path.join(tex, "shot.0001.png"), "//../../tex/shot.0001.png", "SEQUENCE")])
    save(deep)

    empty_file(props)
    collection = bpy.data.collections.new("Props")
    bpy.context.scene.collection.children.link(collection)
    with bpy.data.libraries.load("//deep/deep.blend", link=True, relative=True) as (source, target):
        target.collections = ["Deep"]
    collection.children.link(target.collections[0])
    prop = add_mesh("Prop", "grid", (0, 0, 0), 2.0)
    bpy.context.scene.collection.objects.unlink(prop)
    collection.objects.link(prop)
    uv_over_tiles(prop, 2)
    udim = load_image(os.path.join(tex, "udim", "skin.1001.png"), "//../tex/udim/skin.<UDIM>.png", "TILED")
    sequence = load_image(os.path.join(tex, "seq ü", "render_0001_beauty.png"), "//../tex/seq ü/render_0001_beauty.png", "SEQUENCE")
    textured(prop, [udim, sequence])
    save(props)
    # A file on disk named like a tile is no tile of the image (the image defines 1001 and 1002).
    write_png(os.path.join(tex, "udim", "skin.1003.png"), shade=1.0)

    empty_file(shot)
    link(props, collections=["Props"])
    card = add_mesh("Card", "plane", (0, 0, -1))
    movie = load_image(os.path.join(project, "movies", "clip.mkv"), source="MOVIE")
    # A texture that was there when the shot was made and has since been deleted.
    write_png(os.path.join(tex, "missing.png"), shade=0.4)
    missing = load_image(os.path.join(tex, "missing.png"))
    textured(card, [
        load_image(os.path.join(tex, "größe ü.png")),
        load_image(os.path.join(outside, "shared tex.png"), os.path.join(outside, "shared tex.png")),
        movie,
        missing,
    ])
    light = bpy.data.lights.new("Spot", "SPOT")
    light.use_nodes = True
    ies = light.node_tree.nodes.new("ShaderNodeTexIES")
    ies.mode = "EXTERNAL"
    ies.filepath = "//../ies/spot light.ies"
    light.node_tree.links.new(ies.outputs[0], light.node_tree.nodes["Emission"].inputs["Strength"])
    lamp = bpy.data.objects.new("Spot", light)
    lamp.location = (0, -3, 3)
    bpy.context.scene.collection.objects.link(lamp)
    built = {"blend": shot, "edit": edit, "roots": [project, outside], "missing": [os.path.join(tex, "missing.png")]}
    if with_volumes:
        built["volumes"] = add_volumes(project)
    save(shot)
    os.remove(os.path.join(tex, "missing.png"))

    empty_file(edit)
    scene = bpy.context.scene
    editor = scene.sequence_editor_create()
    strips = getattr(editor, "strips", None)  # 4.4+; 5.0 removed the old name
    strips = editor.sequences if strips is None else strips
    plates = os.path.join(project, "plates")
    image_strip = strips.new_image("Plates", os.path.join(plates, "plate_0001.png"), 1, FRAMES[0])
    for frame in range(FRAMES[0] + 1, FRAMES[1] + 1):
        image_strip.elements.append("plate_%04d.png" % frame)
    image_strip.directory = "//../plates/"
    movie_strip = strips.new_movie("Clip", os.path.join(project, "movies", "clip.mkv"), 2, FRAMES[0])
    movie_strip.filepath = "//../movies/clip.mkv"
    clip = bpy.data.movieclips.load(os.path.join(plates, "plate_0001.png"))
    clip.filepath = "//../plates/plate_0001.png"
    clip_strip = strips.new_clip("Tracked", clip, 3, FRAMES[0])
    # Added on top rather than covering what lies below (4.x reads no strip an opaque one hides).
    movie_strip.blend_type = clip_strip.blend_type = "ADD"
    sound = bpy.data.sounds.load(os.path.join(project, "sounds", "beep.wav"))
    sound.filepath = "//../sounds/beep.wav"
    strips.new_sound("Beep", os.path.join(project, "sounds", "beep.wav"), 4, FRAMES[0])
    scene.render.use_sequencer = True
    save(edit)
    return built


def add_volumes(project):
    """Bakes a tiny smoke domain into OpenVDB files and loads them as volumes: smoke.0001.vdb… as a
    sequence (frame before the extension), and cloud_0001_hi.vdb, numbered mid-name, as a sequence
    too, which Blender reads as one file for every frame."""
    scratch = os.path.join(project, "vdb bake")
    domain, flow = add_fluid("VDB Source", (20, 0, 0), "//../vdb bake", bake=True)
    bpy.data.objects.remove(flow)
    bpy.data.objects.remove(domain)
    folder = os.path.join(project, "volumes")
    os.makedirs(folder, exist_ok=True)
    for frame in range(FRAMES[0], FRAMES[1] + 1):
        shutil.copy(os.path.join(scratch, "data", "fluid_data_%04d.vdb" % frame), os.path.join(folder, "smoke.%04d.vdb" % frame))
    shutil.copy(os.path.join(scratch, "data", "fluid_data_0001.vdb"), os.path.join(folder, "cloud_0001_hi.vdb"))
    shutil.copy(os.path.join(scratch, "data", "fluid_data_0002.vdb"), os.path.join(folder, "cloud_0002_hi.vdb"))
    shutil.rmtree(scratch)
    names = []
    for name, stored in (("Smoke Volume", "//../volumes/smoke.0001.vdb"), ("Cloud Volume", "//../volumes/cloud_0001_hi.vdb")):
        volume = bpy.data.volumes.new(name)
        volume.filepath = stored
        volume.is_sequence = True
        volume.frame_duration = FRAMES[1] - FRAMES[0] + 1
        ob = bpy.data.objects.new(name, volume)
        bpy.context.scene.collection.objects.link(ob)
        names.append(name)
    return names


def alembic(base):
    """Cache files Blender names but cannot read here (Debian builds Blender without Alembic): a
    sequence anim_0001.abc… and anim_0001_v2.abc, which is no sequence for Blender, plus a layer."""
    project = os.path.join(base, "proj")
    shot = os.path.join(project, "shots", "abc shot.blend")
    empty_file(shot)
    folder = os.path.join(project, "abc")
    os.makedirs(folder, exist_ok=True)
    for name in ("anim_0001.abc", "anim_0002.abc", "anim_0003.abc", "anim_0001_v2.abc", "anim_0002_v2.abc", "fix layer.abc"):
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(b"not really alembic")
    for name in ("anim_0001.abc", "anim_0001_v2.abc"):
        bpy.ops.cachefile.open(filepath=os.path.join(folder, name))
        cache = bpy.data.cache_files[-1]
        cache.filepath = "//../abc/" + name
        cache.is_sequence = True
        cache.use_fake_user = True
    bpy.data.cache_files[0].layers.new("//../abc/fix layer.abc")
    save(shot)
    return {"blend": shot, "roots": [project], "folder": folder}


def fluid_check(base):
    """A tiny smoke domain baked: whether this Blender can bake fluids at all."""
    empty_file(os.path.join(base, "fluid check.blend"))
    add_fluid("Check", (0, 0, 0), "//check cache", bake=True)
    data = os.path.join(base, "check cache", "data")
    if not os.path.isdir(data) or not os.listdir(data):
        raise RuntimeError("the bake wrote no data")
    return {"blend": os.path.join(base, "fluid check.blend"), "roots": [base]}


SCENES = {
    "point-caches": point_caches,
    "modifier-caches": modifier_caches,
    "sequences": sequences,
    "alembic": alembic,
    "fluid-check": fluid_check,
}


def main():
    if ARGS.get("bakeOceans"):
        bake_oceans_in_window()
        return
    built = SCENES[ARGS["scene"]](os.path.abspath(ARGS["base"]))
    print("SKYFARM_SCENES " + json.dumps(built), flush=True)


main()
