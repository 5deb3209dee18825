// The GUI tests' screenshot checks (blender-addon/tests/screen.ts) on pictures made here, where the
// truth is known: a drawn panel with a 40% bar passes; a black screen, a bar filled to another
// share, a bar whose text is missing or of another width, and an editor looked for in the wrong
// place fail. PNGs are written with every filter type, so the decoder's unfiltering is checked too.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import type { CaptureRequest, Rgb } from '../blender-addon/tests/harness.js';
import { decodePng, examineCapture, type Picture } from '../blender-addon/tests/screen.js';

const WIDTH = 400;
const HEIGHT = 300;
const ITEM: Rgb = [71, 114, 179];
const INNER: Rgb = [34, 34, 34];
const REGION_BACK: Rgb = [48, 48, 48];
const PANEL_BACK: Rgb = [61, 61, 61];
const TEXT: Rgb = [230, 230, 230];

function blank(colour: Rgb): Picture {
  const rgb = Buffer.alloc(WIDTH * HEIGHT * 3);
  for (let p = 0; p < WIDTH * HEIGHT; p++) rgb.set(colour, p * 3);
  return { width: WIDTH, height: HEIGHT, rgb };
}

function fill(picture: Picture, [left, top, width, height]: number[], colour: Rgb): void {
  for (let y = top!; y < top! + height!; y++) {
    for (let x = left!; x < left! + width!; x++) picture.rgb.set(colour, (y * picture.width + x) * 3);
  }
}

/** Light "glyphs": 2-pixel strokes every 4 pixels, `width` wide, 8 tall. */
function text(picture: Picture, left: number, top: number, width: number): void {
  for (let x = left; x < left + width; x += 4)
    fill(picture, [x, top, Math.min(2, left + width - x), 8], TEXT);
}

/** An editor region with a panel, lines of text and a progress bar filled to 40%, text centred. */
function panelPicture(): Picture {
  const picture = blank([29, 29, 29]);
  // Another editor's shading across the top: real screens hold hundreds of colours.
  for (let x = 0; x < WIDTH; x++) fill(picture, [x, 0, 1, 30], [x % 256, 80, 120]);
  fill(picture, [50, 40, 300, 200], REGION_BACK);
  fill(picture, [55, 45, 290, 190], PANEL_BACK);
  for (let line = 0; line < 6; line++) text(picture, 70, 60 + line * 14, 150);
  fill(picture, [80, 180, 200, 20], INNER);
  fill(picture, [80, 180, 80, 20], ITEM);
  text(picture, 180 - 29, 186, 58);
  return picture;
}

function capture(overrides: Partial<CaptureRequest> = {}): CaptureRequest {
  return {
    name: 'synthetic',
    png: '',
    blender: 'test',
    window: [0, 0, WIDTH, HEIGHT],
    theme: {
      progress: { item: ITEM, inner: INNER, text: TEXT },
      slider: { item: ITEM, inner: [84, 84, 84], text: TEXT },
    },
    regions: [{ label: 'Properties editor', rect: [50, 40, 300, 200], backs: [REGION_BACK, PANEL_BACK] }],
    bars: [{ label: 'job j_1', kind: 'progress', progress: 0.4, text: '2/5 frames', textWidth: 58 }],
    ...overrides,
  };
}

function failed(findings: ReturnType<typeof examineCapture>): string[] {
  return findings.filter((finding) => !finding.ok).map((finding) => finding.message);
}

/** PNG bytes of a picture, row filters cycling through all five types. */
function encodePng(picture: Picture): Buffer {
  const stride = picture.width * 3;
  const raw = Buffer.alloc(picture.height * (stride + 1));
  for (let y = 0; y < picture.height; y++) {
    const filter = y % 5;
    raw[y * (stride + 1)] = filter;
    for (let i = 0; i < stride; i++) {
      const value = picture.rgb[y * stride + i]!;
      const left = i >= 3 ? picture.rgb[y * stride + i - 3]! : 0;
      const up = y > 0 ? picture.rgb[(y - 1) * stride + i]! : 0;
      const upLeft = y > 0 && i >= 3 ? picture.rgb[(y - 1) * stride + i - 3]! : 0;
      const p = left + up - upLeft;
      const paeth =
        Math.abs(p - left) <= Math.abs(p - up) && Math.abs(p - left) <= Math.abs(p - upLeft)
          ? left
          : Math.abs(p - up) <= Math.abs(p - upLeft)
            ? up
            : upLeft;
      const predicted = [0, left, up, (left + up) >> 1, paeth][filter]!;
      raw[y * (stride + 1) + 1 + i] = (value - predicted) & 0xff;
    }
  }
  const chunk = (type: string, body: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(body.length);
    return Buffer.concat([length, Buffer.from(type, 'latin1'), body, Buffer.alloc(4)]); // CRC not checked
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(picture.width, 0);
  header.writeUInt32BE(picture.height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

t.test('a drawn panel with its bar at the job share passes every check', async (t) => {
  const findings = examineCapture(capture(), panelPicture());
  t.same(failed(findings), [], 'nothing fails');
  t.ok(
    findings.some((finding) => /filled to the job's share: 40\.0% drawn/.test(finding.message)),
    'the fill is measured exactly',
  );
});

t.test('the PNG decoder reads back every filter type', async (t) => {
  const dir = t.testdir({});
  const picture = panelPicture();
  const file = path.join(dir, 'panel.png');
  writeFileSync(file, encodePng(picture));
  const decoded = decodePng(file);
  t.same([decoded.width, decoded.height], [WIDTH, HEIGHT]);
  t.ok(decoded.rgb.equals(picture.rgb), 'every pixel comes back');
  t.same(failed(examineCapture(capture({ png: file }))), [], 'and the decoded picture passes');
});

t.test('a black screen fails: flat, no editor, no bar', async (t) => {
  const messages = failed(examineCapture(capture(), blank([0, 0, 0])));
  t.match(messages.join('\n'), /not one flat colour \(1 colours\)/);
  t.match(messages.join('\n'), /Properties editor is where Blender says/);
  t.match(messages.join('\n'), /has panels drawn in it/);
  t.match(messages.join('\n'), /shows light text/);
  t.match(messages.join('\n'), /drawn in the theme's colours with its 58 px wide text centred on it/);
});

t.test('a bar filled to another share fails', async (t) => {
  const expected = {
    label: 'job j_1',
    kind: 'progress' as const,
    progress: 0.7,
    text: '2/5 frames',
    textWidth: 58,
  };
  t.same(failed(examineCapture(capture({ bars: [expected] }), panelPicture())), [
    `synthetic: job j_1's bar (progress, "2/5 frames") is filled to the job's share: 40.0% drawn, 70.0% expected`,
  ]);
});

t.test('a bar without its text, or with text of another width, fails', async (t) => {
  const noText = panelPicture();
  fill(noText, [150, 186, 60, 8], INNER);
  t.match(failed(examineCapture(capture(), noText)), [/58 px wide text centred on it/]);
  const wider = {
    label: 'job j_1',
    kind: 'progress' as const,
    progress: 0.4,
    text: '2/5 frames done',
    textWidth: 90,
  };
  t.match(failed(examineCapture(capture({ bars: [wider] }), panelPicture())), [
    /90 px wide text centred on it/,
  ]);
});

t.test('an editor looked for where Blender did not draw it fails', async (t) => {
  const elsewhere = capture({
    regions: [{ label: 'Properties editor', rect: [0, 250, 400, 50], backs: [REGION_BACK, PANEL_BACK] }],
    bars: [],
  });
  const messages = failed(examineCapture(elsewhere, panelPicture()));
  t.match(messages, [/is where Blender says/, /has panels drawn in it/, /shows light text/]);
});
