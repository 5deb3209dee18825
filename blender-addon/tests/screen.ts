// What the GUI tests' screenshots show, measured in their pixels: the harness photographs the X
// display while Blender runs (support.capture), and Blender records beside each picture where its
// editor is, the theme colours it draws with and the progress bar the panel lays out. These checks
// find all of that in the picture, so a black, blank or wrongly drawn screen fails the test.
import { readFileSync } from 'node:fs';
import { inflateSync } from 'node:zlib';
import type { Test } from 'tap';
import type { CaptureRequest, Rgb } from './harness.js';

export interface Picture {
  width: number;
  height: number;
  /** 3 bytes per pixel, rows top to bottom. */
  rgb: Buffer;
}

/** Decodes an 8-bit RGB or RGBA, non-interlaced PNG (what `import PNG24:` writes) into RGB pixels. */
export function decodePng(file: string): Picture {
  const data = readFileSync(file);
  if (data.readUInt32BE(0) !== 0x89504e47) throw new Error(`${file} is not a PNG`);
  let offset = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (offset + 8 <= data.length) {
    const length = data.readUInt32BE(offset);
    const type = data.toString('latin1', offset + 4, offset + 8);
    const body = data.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      const [depth, colorType, , , interlace] = [body[8], body[9], body[10], body[11], body[12]];
      if (depth !== 8 || (colorType !== 2 && colorType !== 6) || interlace !== 0) {
        throw new Error(`${file}: only 8-bit RGB(A) non-interlaced PNGs are read (depth ${depth}, type ${colorType})`);
      }
      channels = colorType === 2 ? 3 : 4;
    } else if (type === 'IDAT') {
      idat.push(body);
    } else if (type === 'IEND') {
      break;
    }
    offset += 12 + length;
  }
  if (!width || !height) throw new Error(`${file}: no IHDR`);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  if (raw.length !== height * (stride + 1)) throw new Error(`${file}: ${raw.length} bytes of image data`);
  const rows = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = y * stride;
    for (let i = 0; i < stride; i++) {
      const left = i >= channels ? rows[out + i - channels]! : 0;
      const up = y > 0 ? rows[out - stride + i]! : 0;
      const upLeft = y > 0 && i >= channels ? rows[out - stride + i - channels]! : 0;
      let predicted: number;
      switch (filter) {
        case 0:
          predicted = 0;
          break;
        case 1:
          predicted = left;
          break;
        case 2:
          predicted = up;
          break;
        case 3:
          predicted = (left + up) >> 1;
          break;
        case 4: {
          const p = left + up - upLeft;
          const [pa, pb, pc] = [Math.abs(p - left), Math.abs(p - up), Math.abs(p - upLeft)];
          predicted = pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft;
          break;
        }
        default:
          throw new Error(`${file}: unknown PNG filter ${filter} in row ${y}`);
      }
      rows[out + i] = (line[i]! + predicted) & 0xff;
    }
  }
  if (channels === 3) return { width, height, rgb: rows };
  const rgb = Buffer.alloc(width * height * 3);
  for (let p = 0; p < width * height; p++) rows.copy(rgb, p * 3, p * 4, p * 4 + 3);
  return { width, height, rgb };
}

function pixel(picture: Picture, x: number, y: number): Rgb {
  const at = (y * picture.width + x) * 3;
  return [picture.rgb[at]!, picture.rgb[at + 1]!, picture.rgb[at + 2]!];
}

/** The largest difference in one channel. */
function distance(a: Rgb, b: Rgb): number {
  return Math.max(Math.abs(a[0] - b[0]), Math.abs(a[1] - b[1]), Math.abs(a[2] - b[2]));
}

function luminance([r, g, b]: Rgb): number {
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

type Rect = [left: number, top: number, width: number, height: number];

/** Distinct colours in a rectangle, counted up to `limit`. */
export function colourCount(picture: Picture, [left, top, width, height]: Rect, limit = 4096): number {
  const seen = new Set<number>();
  for (let y = top; y < top + height; y++) {
    for (let x = left; x < left + width; x++) {
      const [r, g, b] = pixel(picture, x, y);
      seen.add((r << 16) | (g << 8) | b);
      if (seen.size >= limit) return seen.size;
    }
  }
  return seen.size;
}

/** The most frequent colour in a rectangle: an editor's background. */
export function dominantColour(picture: Picture, [left, top, width, height]: Rect): Rgb {
  const counts = new Map<number, number>();
  for (let y = top; y < top + height; y++) {
    for (let x = left; x < left + width; x++) {
      const [r, g, b] = pixel(picture, x, y);
      const key = (r << 16) | (g << 8) | b;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  let best = 0;
  let bestCount = -1;
  for (const [key, count] of counts) {
    if (count > bestCount) [best, bestCount] = [key, count];
  }
  return [(best >> 16) & 0xff, (best >> 8) & 0xff, best & 0xff];
}

export interface FoundBar {
  rect: Rect;
  /** Share of the bar drawn in the fill colour, measured along a row above the text. */
  filled: number;
  /**
   * The texts drawn over the bar (columns with pixels brighter than both bar colours, split where
   * 12 or more columns stay empty), each as [left, right].
   */
  texts: [number, number][];
}

const BAR_TOLERANCE = 12;

/**
 * Finds progress bars (or percentage sliders) drawn with `colours` inside `area`: blobs of rows in
 * the fill or the empty colour, 10 to 40 pixels tall and at least 100 wide, widest first.
 */
export function findBars(picture: Picture, area: Rect, colours: { item: Rgb; inner: Rgb }): FoundBar[] {
  const [left, top, width, height] = area;
  const isItem = (x: number, y: number) => distance(pixel(picture, x, y), colours.item) <= BAR_TOLERANCE;
  const isInner = (x: number, y: number) => distance(pixel(picture, x, y), colours.inner) <= BAR_TOLERANCE;
  // Runs of fill colour, at least 8 pixels long, row by row, grouped into blobs where they touch.
  const blobs: { left: number; right: number; top: number; bottom: number }[] = [];
  let open: typeof blobs = [];
  for (let y = top; y < top + height; y++) {
    const runs: [number, number][] = [];
    let start = -1;
    for (let x = left; x <= left + width; x++) {
      const inside = x < left + width && isItem(x, y);
      if (inside && start < 0) start = x;
      if (!inside && start >= 0) {
        if (x - start >= 8) runs.push([start, x - 1]);
        start = -1;
      }
    }
    const next: typeof blobs = [];
    for (const [runLeft, runRight] of runs) {
      const touching = open.find((blob) => runLeft <= blob.right && runRight >= blob.left);
      if (touching) {
        touching.left = Math.min(touching.left, runLeft);
        touching.right = Math.max(touching.right, runRight);
        touching.bottom = y;
        if (!next.includes(touching)) next.push(touching);
      } else {
        const blob = { left: runLeft, right: runRight, top: y, bottom: y };
        blobs.push(blob);
        next.push(blob);
      }
    }
    open = next;
  }
  const bars: FoundBar[] = [];
  for (const blob of blobs) {
    const barHeight = blob.bottom - blob.top + 1;
    if (barHeight < 10 || barHeight > 40) continue;
    // The row a quarter down the bar: inside its rounded ends, above its text.
    const row = blob.top + Math.round(barHeight / 4);
    // The fill starts at the bar's left end; the empty part continues right of it in the inner colour
    // (after a pixel or two where the fill's edge is blended).
    let right = blob.right;
    for (let x = right + 1, gap = 0; x < left + width && gap <= 3; x++) {
      if (isInner(x, row) || isItem(x, row)) {
        right = x;
        gap = 0;
      } else {
        gap++;
      }
    }
    let filledPixels = 0;
    for (let x = blob.left; x <= right; x++) if (isItem(x, row)) filledPixels++;
    const barWidth = right - blob.left + 1;
    if (barWidth < 100) continue;
    // Text: pixels clearly brighter than both bar colours, in the bar's middle rows.
    const bright = Math.max(luminance(colours.item), luminance(colours.inner)) + 60;
    const texts: [number, number][] = [];
    for (let x = blob.left; x <= right; x++) {
      let lit = false;
      for (let y = blob.top + 2; y <= blob.bottom - 2 && !lit; y++) lit = luminance(pixel(picture, x, y)) >= bright;
      if (!lit) continue;
      const last = texts[texts.length - 1];
      if (last && x - last[1] < 12) last[1] = x;
      else texts.push([x, x]);
    }
    bars.push({ rect: [blob.left, blob.top, barWidth, barHeight], filled: filledPixels / barWidth, texts });
  }
  return bars.sort((a, b) => b.rect[2] - a.rect[2]);
}

/** One thing a screenshot must show: whether it does, what was measured, and the measurements. */
export interface Finding {
  ok: boolean;
  message: string;
  details?: Record<string, unknown>;
}

/**
 * What a capture shows against what Blender recorded beside it: a real picture (not one flat
 * colour), each editor region in its theme colours with panels and text drawn in it, and each job
 * bar drawn in its place, filled to the job's share, its text as wide as Blender's font makes it.
 */
export function examineCapture(capture: CaptureRequest, picture: Picture = decodePng(capture.png)): Finding[] {
  const findings: Finding[] = [];
  const check = (ok: boolean, message: string, details?: Record<string, unknown>) =>
    findings.push({ ok, message, ...(details ? { details } : {}) });
  const name = capture.name;
  const [wx, wy, ww, wh] = capture.window;
  check(
    wx >= 0 && wy >= 0 && wx + ww <= picture.width && wy + wh <= picture.height,
    `${name}: Blender's window (${ww}×${wh} at ${wx},${wy}) lies on the ${picture.width}×${picture.height} screen`,
  );
  const colours = colourCount(picture, [0, 0, picture.width, picture.height]);
  check(colours >= 64, `${name}: the screen is a drawn picture, not one flat colour (${colours} colours)`);
  for (const region of capture.regions) {
    const back = dominantColour(picture, region.rect);
    check(
      region.backs.some((colour) => distance(back, colour) <= 6),
      `${name}: the ${region.label} is where Blender says, in its theme colours ` +
        `(most common colour ${back.join(',')}; theme ${region.backs.map((c) => c.join(',')).join(' or ')})`,
    );
    const [left, top, width, height] = region.rect;
    let differing = 0;
    let bright = 0;
    const textLevel = luminance(back) + 100;
    for (let y = top; y < top + height; y++) {
      for (let x = left; x < left + width; x++) {
        const colour = pixel(picture, x, y);
        // Panels, boxes and widgets are drawn a few shades off the editor's background.
        if (distance(colour, back) > 8) differing++;
        if (luminance(colour) >= textLevel) bright++;
      }
    }
    const share = differing / (width * height);
    check(
      share >= 0.05,
      `${name}: the ${region.label} has panels drawn in it (${(share * 100).toFixed(1)}% of it differs from its background)`,
    );
    check(bright >= 500, `${name}: the ${region.label} shows light text on its dark theme (${bright} text pixels)`);
  }
  for (const expected of capture.bars) {
    const area = capture.regions[0]?.rect ?? [0, 0, picture.width, picture.height];
    const where = `${name}: ${expected.label}'s bar (${expected.kind}, "${expected.text}")`;
    if (expected.progress < 0.05) {
      // An empty bar has no fill to find it by; the picture's other checks still hold.
      check(true, `${where}: progress ${(expected.progress * 100).toFixed(1)}%, nothing filled to find`);
      continue;
    }
    const found = findBars(picture, area, capture.theme[expected.kind]);
    // Other things share the fill colour (the selected list row, sliders): the job's bar is the one
    // carrying its text where Blender puts it (centred on a progress bar, at the left of a slider,
    // whose value then follows at the right), as wide as Blender's UI font draws it.
    const placement = expected.kind === 'progress' ? 'centred on it' : 'at its left';
    const carrying = found.filter((bar) => {
      const text = expected.kind === 'progress' ? bar.texts.length === 1 && bar.texts[0] : bar.texts[0];
      if (!text) return false;
      const width = text[1] - text[0] + 1;
      const placed =
        expected.kind === 'progress'
          ? Math.abs((text[0] + text[1]) / 2 - (bar.rect[0] + bar.rect[2] / 2)) <= 6
          : text[0] - bar.rect[0] <= 24;
      return placed && Math.abs(width - expected.textWidth) <= Math.max(4, expected.textWidth * 0.1);
    });
    check(
      carrying.length > 0,
      `${where} is drawn in the theme's colours with its ${expected.textWidth} px wide text ${placement}`,
      { found },
    );
    const bar = carrying.sort(
      (a, b) => Math.abs(a.filled - expected.progress) - Math.abs(b.filled - expected.progress),
    )[0];
    if (!bar) continue;
    check(
      Math.abs(bar.filled - expected.progress) <= 0.05,
      `${where} is filled to the job's share: ${(bar.filled * 100).toFixed(1)}% drawn, ` +
        `${(expected.progress * 100).toFixed(1)}% expected`,
      { bar },
    );
  }
  return findings;
}

/** examineCapture() as test assertions, one per finding. */
export function checkCapture(t: Test, capture: CaptureRequest): void {
  for (const finding of examineCapture(capture)) t.ok(finding.ok, finding.message, finding.details ?? {});
}
