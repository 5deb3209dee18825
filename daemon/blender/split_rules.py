# What splitting one frame's samples across machines needs from Blender (issue #17), shared by
# probe.py (refusals before upload), render_chunk.py (a part's settings) and merge_frame.py.
#
# A part renders a disjoint run of the frame's one sample sequence (the scene's seed; part k renders
# the samples after those of parts 0…k-1), no denoising, no adaptive sampling, no compositor, into a
# float32 uncompressed multilayer EXR; the parts' sample-weighted mean (daemon/src/split/merge.ts) is
# then the single render of those samples up to float rounding, and merge_frame.py applies the scene's
# denoiser, colour management, output format and file name once.
#
# How a part renders its run: Blender 4.4+ has Cycles' sample subsets, made for distributed
# rendering: samples = the whole sequence, use_sample_subset, sample_offset and sample_subset_length.
# Before 4.4 there is only sample_offset ("samples to skip when starting"), with samples = the part's
# share, so the sample pattern is built for the share: the tabulated patterns do not care (sample k is
# row k of a table) and 3.4's Sobol-Burley measured the same. 4.2/4.3's blue-noise patterns (their
# default) are built for the render's sample count (Cycles' blue_noise_sequence_length is the render's
# samples, and each pixel takes its own stretch of one sequence), so no part of a sample split can
# reproduce the frame's samples. There, and for any pattern not known to be exact, a part renders a
# band of the frame's rows instead, with every sample (a border render, not cropped): Cycles samples a
# pixel by its position in the whole frame, so the band is bit for bit the single render's rows, and
# the merge puts the bands together (merge.ts). The part says so in its EXR's Note (REGION_NOTE).
# Measured alternatives on 4.3 were further from the single render: parts with their own seeds 1.05x
# the difference between two seeds (1.03x blurred), the tabulated pattern 1.001x (1.21x blurred).

# Adaptive sampling is turned off for parts that share the samples: it stops a pixel when its own
# estimate is below the noise threshold, and each part would judge that on 1/N of the samples, so the
# parts' per-pixel sample counts would differ and no part would stop where the whole frame would.
# Those parts render their full share; the merged frame has the scene's (maximum) samples everywhere.
# A band part renders every sample of its pixels, so it keeps the scene's adaptive sampling: each pixel
# stops where it stops in the single render, except that Cycles cannot look past the band's edge when it
# widens the unconverged area by a pixel (measured on 4.3: mean |Δ| 1.4e-4 from the single render,
# against values ~1.5), and the band costs what its rows cost in the single render.

# Render passes that are not a mean over samples: averaging them would be wrong (ids, depth of the
# first hit). The merge takes them from part 0. Cryptomatte is refused instead (its ranks).
FIRST_PART_PASSES = ("Depth", "IndexOB", "IndexMA", "Denoising Depth")


def part_samples(total, parts, part):
    """Part `part` of `parts` renders this many samples: the remainder goes to the first parts, so
    the shares sum to `total` exactly."""
    return total // parts + (1 if part < total % parts else 0)


def part_offset(first, total, parts, part):
    """The first sample of part `part`: after the scene's own first sample and the earlier parts'
    shares, so the parts cover the frame's samples exactly once."""
    return first + sum(part_samples(total, parts, earlier) for earlier in range(part))


# Patterns whose sample k is the same whatever the render's sample count: before 4.4 a part renders
# the frame's samples exactly only with one of these (3.4 and 3.5+ call the tabulated one Progressive
# Multi-Jitter and Tabulated Sobol; SOBOL is 3.4's Sobol-Burley, measured exact on 3.4).
COUNT_FREE_PATTERNS = ("TABULATED_SOBOL", "PROGRESSIVE_MULTI_JITTER", "SOBOL")


# Written into a band part's EXR header ("Note", Blender's metadata): `skyfarm-part rows Y0 Y1 of H`,
# rows counted from the bottom as Blender's border is, Y1 exclusive. merge.ts reads it.
REGION_NOTE = "skyfarm-part rows %d %d of %d"


def frame_rows(render):
    """The rows Blender renders (its resolution scaled by the percentage, as Blender rounds it)."""
    return render.resolution_y * render.resolution_percentage // 100


def part_rows(height, parts, part):
    """(first, end) rows of part `part`'s band, from the bottom: equal bands, the remainder spread."""
    return height * part // parts, height * (part + 1) // parts


def set_band(render, height, first, end):
    """A border render of rows first … end-1 (not cropped: the EXR keeps the frame's size). Blender
    truncates border × height to whole rows, so the border sits half a row inside each edge, safe
    from float rounding."""
    render.use_border = True
    render.use_crop_to_border = False
    render.border_min_x, render.border_max_x = 0.0, 1.0
    render.border_min_y = (first + 0.5) / height if first > 0 else 0.0
    render.border_max_y = (end + 0.5) / height if end < height else 1.0


def rendered_view_layers(scene):
    return [layer for layer in scene.view_layers if getattr(layer, "use", True)]


def has_sample_subsets(cycles):
    """Blender 4.4+: Cycles renders a subset of a sequence of `samples` (use_sample_subset)."""
    return hasattr(cycles, "use_sample_subset")


def sequence_samples(scene, layer):
    """The samples of the sequence Cycles renders `layer` from (the view layer's override as
    use_layer_samples says)."""
    samples = scene.cycles.samples
    override = getattr(layer, "samples", 0)
    mode = getattr(scene.cycles, "use_layer_samples", "USE")
    if override > 0 and mode == "USE":
        return override
    if override > 0 and mode == "BOUNDED":
        return min(override, samples)
    return samples


def frame_samples(scene, layer):
    """(first, count): a render of the frame renders samples first … first+count-1 of its sequence
    (the scene's own sample offset / subset as Cycles applies them; usually (0, samples))."""
    cycles = scene.cycles
    total = sequence_samples(scene, layer)
    first = getattr(cycles, "sample_offset", 0)
    if not has_sample_subsets(cycles):
        return first, total
    if not cycles.use_sample_subset:
        return 0, total
    # Cycles' RenderScheduler::set_sample_params: the subset clipped to the sequence.
    return first, max(min(first + cycles.sample_subset_length, total) - first, 0)


def effective_samples(scene, layer):
    """The samples a render of the frame renders (what the parts share)."""
    return frame_samples(scene, layer)[1]


def splits_by_rows(scene):
    """Whether this Blender splits the scene's frames into bands of rows: a part cannot render exactly
    its run of the frame's sample sequence (no sample subsets, a pattern that depends on the count)."""
    cycles = scene.cycles
    return not (has_sample_subsets(cycles) or getattr(cycles, "sampling_pattern", None) in COUNT_FREE_PATTERNS)


def scene_denoises(scene, layer):
    return bool(scene.cycles.use_denoising) and bool(getattr(layer.cycles, "use_denoising", True))


def is_multilayer_output(settings):
    if getattr(settings, "media_type", None) == "MULTI_LAYER_IMAGE":
        return True
    return settings.file_format == "OPEN_EXR_MULTILAYER"


def compositor_tree(scene):
    """The node tree Blender composites this scene with when rendering, or None."""
    if not scene.render.use_compositing:
        return None
    if hasattr(scene, "compositing_node_group"):  # 5.0+: a node group, no use_nodes
        return scene.compositing_node_group
    return scene.node_tree if scene.use_nodes else None


def compositor_problem(scene):
    """Why the merge cannot reproduce this scene's compositor, or None. merge_frame.py composites the
    merged passes with the scene's own tree, its Render Layers node replaced by the merged EXR; that
    cannot stand in for the render of another scene or of a view layer that is not rendered, and a
    File Output node would write its files from the merge machine as well."""
    tree = compositor_tree(scene)
    if tree is None:
        return None
    layers = rendered_view_layers(scene)
    for node in tree.nodes:
        if node.mute:
            continue
        if node.bl_idname == "CompositorNodeOutputFile":
            return "its compositor writes files itself (File Output node)"
        if node.bl_idname != "CompositorNodeRLayers":
            continue
        if node.scene not in (None, scene):
            return 'its compositor reads the render of another scene ("%s")' % node.scene.name
        if layers and node.layer != layers[0].name:
            return 'its compositor reads view layer "%s", which this scene does not render' % node.layer
    return None


def refusals(scene):
    """Why this scene's frames cannot be split across machines: a list of (code, message)."""
    problems = []
    if scene.render.engine != "CYCLES":
        problems.append(("SPLIT_ENGINE", "the render engine is %s; only Cycles renders a frame as samples that can be split and merged" % scene.render.engine))
        return problems
    layers = rendered_view_layers(scene)
    if len(layers) != 1:
        problems.append(("SPLIT_COMPOSITOR", "it renders %d view layers; the merge reproduces a scene with exactly one" % len(layers)))
    problem = compositor_problem(scene)
    if problem:
        problems.append(("SPLIT_COMPOSITOR", problem))
    editor = scene.sequence_editor
    strips = (getattr(editor, "strips_all", None) or getattr(editor, "sequences_all", ())) if editor else ()
    if scene.render.use_sequencer and len(strips) > 0:
        problems.append(("SPLIT_COMPOSITOR", "its sequencer has strips, which replace the render in the output"))
    if scene.render.use_border:
        problems.append(("SPLIT_COMPOSITOR", "it renders a region (border); the merge writes whole frames"))
    if scene.render.use_multiview:
        problems.append(("SPLIT_COMPOSITOR", "it renders stereo/multi-view; the merge writes one view"))
    if is_multilayer_output(scene.render.image_settings):
        problems.append(("SPLIT_OUTPUT", "its output is a multilayer EXR; the merge writes the composited image in a single-layer format (PNG, EXR, TIFF, …)"))
    if layers and any(getattr(layers[0], attr, False) for attr in ("use_pass_cryptomatte_object", "use_pass_cryptomatte_material", "use_pass_cryptomatte_asset")):
        problems.append(("SPLIT_COMPOSITOR", "it renders Cryptomatte passes, which cannot be merged by averaging"))
    if layers and effective_samples(scene, layers[0]) < 1:
        problems.append(("SPLIT_TOO_MANY", "it renders no samples"))
    return problems


def set_multilayer_exr(settings):
    """Float32, uncompressed multilayer EXR (5.0+: media type first; before: the file format)."""
    if hasattr(settings, "media_type"):
        settings.media_type = "MULTI_LAYER_IMAGE"
    settings.file_format = "OPEN_EXR_MULTILAYER"
    settings.color_depth = "32"
    settings.exr_codec = "NONE"


def configure_part(scene, parts, part):
    """Sets `scene` up to render part `part` of `parts`; returns (samples, total, offset, rows): the
    samples it renders, the frame's samples, the index of its first sample in the sequence, and for
    a band part (rows first, end) of the frame's height, else None."""
    layer = rendered_view_layers(scene)[0]
    first, total = frame_samples(scene, layer)
    denoise = scene_denoises(scene, layer)
    cycles = scene.cycles
    render = scene.render
    sequence = sequence_samples(scene, layer)
    layer.samples = 0  # its override, if any, is in `sequence`
    rows = None
    if has_sample_subsets(cycles):
        samples = part_samples(total, parts, part)
        offset = part_offset(first, total, parts, part)
        cycles.samples = sequence
        cycles.use_sample_subset = True
        cycles.sample_offset = offset
        cycles.sample_subset_length = samples
    elif not splits_by_rows(scene):
        samples = part_samples(total, parts, part)
        offset = part_offset(first, total, parts, part)
        cycles.samples = samples
        cycles.sample_offset = offset
    else:
        samples, offset = total, first
        cycles.samples = total
        cycles.sample_offset = first
        height = frame_rows(render)
        band = part_rows(height, parts, part)
        if band[1] - band[0] < 1:
            raise ValueError("%d parts but the frame is only %d rows high: with this Blender's sampling pattern every part renders a band of rows" % (parts, height))
        set_band(render, height, *band)
        render.use_stamp_note = True
        render.stamp_note_text = REGION_NOTE % (band[0], band[1], height)
        rows = (band[0], band[1], height)
    if samples < 1:
        raise ValueError("%d parts but the scene renders only %d samples: every part needs at least one" % (parts, total))
    # The seed stays the scene's: every part draws from the same sequence (with use_animated_seed
    # Cycles hashes it with the frame, the same for every part of a frame).
    if rows is None:
        cycles.use_adaptive_sampling = False
    cycles.time_limit = 0.0
    cycles.use_denoising = False
    # The denoiser's inputs, rendered by every part and averaged like the image.
    layer.cycles.denoising_store_passes = denoise
    render.use_compositing = False
    render.use_sequencer = False
    # Stamped text drawn into the image would be averaged (merge_frame.py draws the scene's once).
    render.use_stamp = False
    set_multilayer_exr(render.image_settings)
    return samples, total, offset, rows
