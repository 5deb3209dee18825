// Frame specs as users type them, chunking into render chunks, and the compact form for messages.
import t from 'tap';
import { isSkyfarmError } from '../daemon/src/errors.js';
import { chunkFrames, formatFrameList, MAX_FRAMES, parseFrameSpec } from '../daemon/src/render/frames.js';

function rejection(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (error) {
    if (isSkyfarmError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error('expected an error');
}

t.test('parseFrameSpec: ranges, lists, steps, single and negative frames', async (t) => {
  t.same(parseFrameSpec('1-5'), [1, 2, 3, 4, 5]);
  t.same(parseFrameSpec('7'), [7]);
  t.same(parseFrameSpec('1-3,20,30-32'), [1, 2, 3, 20, 30, 31, 32]);
  t.same(parseFrameSpec('1-20x5'), [1, 6, 11, 16]);
  t.same(parseFrameSpec('1-21x5'), [1, 6, 11, 16, 21]);
  t.same(parseFrameSpec('0'), [0]);
  t.same(parseFrameSpec('-5--1'), [-5, -4, -3, -2, -1]);
  t.same(parseFrameSpec('-2-2'), [-2, -1, 0, 1, 2]);
  t.same(parseFrameSpec('-3'), [-3]);
  t.equal(parseFrameSpec('1-250').length, 250);
});

t.test('parseFrameSpec: whitespace, order and duplicates', async (t) => {
  t.same(parseFrameSpec('  1 - 3 , 7 ,\t10-12 x 2 '), [1, 2, 3, 7, 10, 12]);
  t.same(parseFrameSpec('30-32,1-3,2'), [1, 2, 3, 30, 31, 32], 'sorted, unique');
  t.same(parseFrameSpec('1-10x3,1-10x2'), [1, 3, 4, 5, 7, 9, 10]);
  t.same(parseFrameSpec('5-5'), [5]);
  t.same(parseFrameSpec('1-3X2'), [1, 3], 'step marker is case-insensitive');
});

t.test('parseFrameSpec: errors name the bad part', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['', /empty/],
    ['   ', /empty/],
    ['1-10,,20', /empty part/],
    ['1-10,', /empty part/],
    ['abc', /"abc" is not a frame/],
    ['1-10,2x', /"2x" is not a frame/],
    ['1-', /"1-" is not a frame/],
    ['1.5', /"1.5" is not a frame/],
    ['1-10x', /"1-10x" is not a frame/],
    ['10-1', /range "10-1" runs backwards; write 1-10/],
    ['-1--5', /range "-1--5" runs backwards/],
    ['1-10x0', /step 0 in "1-10x0" must be a positive/],
    ['1-10x-2', /step -2 in "1-10x-2" must be a positive/],
    ['1-2000000', /outside Blender's range/],
    ['99999999999999999999', /outside Blender's range/],
  ];
  for (const [spec, message] of cases) {
    const error = rejection(() => parseFrameSpec(spec));
    t.equal(error.code, 'BAD_FRAME_SPEC', `${JSON.stringify(spec)} → BAD_FRAME_SPEC`);
    t.match(error.message, message, `${JSON.stringify(spec)} → ${error.message}`);
  }
});

t.test('parseFrameSpec: at most 1,000,000 frames', async (t) => {
  t.equal(MAX_FRAMES, 1_000_000);
  t.equal(parseFrameSpec('1-1000000').length, 1_000_000, 'exactly the limit is fine');
  const over = rejection(() => parseFrameSpec('0-1000000'));
  t.equal(over.code, 'BAD_FRAME_SPEC');
  t.match(over.message, /too many frames|more than 1000000/);
  const union = rejection(() => parseFrameSpec('1-600000,-600000--1'));
  t.equal(union.code, 'BAD_FRAME_SPEC', 'the limit applies to the union of parts');
  t.match(union.message, /more than 1000000 frames/);
});

t.test('chunkFrames: consecutive groups, last one shorter', async (t) => {
  t.same(chunkFrames([1, 2, 3, 4, 5, 6, 7], 3), [[1, 2, 3], [4, 5, 6], [7]]);
  t.same(chunkFrames([1, 2, 3], 5), [[1, 2, 3]]);
  t.same(chunkFrames([1, 2, 3], 1), [[1], [2], [3]]);
  t.same(chunkFrames([], 4), []);
  t.same(chunkFrames(parseFrameSpec('1-20x5,100'), 2), [[1, 6], [11, 16], [100]]);
  for (const bad of [0, -1, 1.5, Number.NaN]) {
    const error = rejection(() => chunkFrames([1, 2], bad));
    t.equal(error.code, 'BAD_ARGUMENT', `chunk size ${bad} is refused`);
  }
});

t.test('formatFrameList: compact ranges', async (t) => {
  t.equal(formatFrameList([1, 2, 3, 7, 9, 10]), '1-3,7,9-10');
  t.equal(formatFrameList([10, 9, 7, 3, 2, 1, 2]), '1-3,7,9-10', 'sorts and de-duplicates');
  t.equal(formatFrameList([5]), '5');
  t.equal(formatFrameList([]), '');
  t.equal(formatFrameList([-3, -2, -1, 0, 4]), '-3-0,4');
  t.equal(formatFrameList(parseFrameSpec('1-1000')), '1-1000');
  t.equal(formatFrameList([1, 3, 5, 7, 9, 11], { maxParts: 3 }), '1,3,5,… (+3 frames)');
  t.equal(formatFrameList([1, 2, 3, 5], { maxParts: 2 }), '1-3,5', 'no summary when everything fits');
});

t.test('formatFrameList and parseFrameSpec round-trip', async (t) => {
  for (const spec of ['1-3,7,9-10', '1-250', '-10--5,0,3-4', '1']) {
    const frames = parseFrameSpec(spec);
    t.same(parseFrameSpec(formatFrameList(frames)), frames, spec);
  }
});
