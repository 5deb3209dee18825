// Every shared protocol vector gets the verdict it lists from the TypeScript codec; the Python codec
// in the add-on is tested against the same files.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { decodeClientMessage, decodeServerMessage } from '../daemon/src/protocol/codec.js';

interface Vector {
  name: string;
  raw: string;
  valid: boolean;
  code?: string;
  padSpaces?: number;
  id?: string | null;
}

function load(name: string): Vector[] {
  return JSON.parse(
    readFileSync(new URL(`../protocol/vectors/${name}`, import.meta.url), 'utf8'),
  ) as Vector[];
}

for (const [file, decode] of [
  ['client.json', decodeClientMessage],
  ['server.json', decodeServerMessage],
] as const) {
  t.test(file, async (t) => {
    const vectors = load(file);
    t.ok(vectors.length >= 15, 'the vector file has a real set of cases');
    t.ok(vectors.some((v) => v.valid) && vectors.some((v) => !v.valid), 'valid and invalid cases');
    for (const vector of vectors) {
      const raw = vector.raw + ' '.repeat(vector.padSpaces ?? 0);
      const decoded = decode(raw);
      if (vector.valid) {
        t.ok(
          decoded.ok,
          `${vector.name}: accepted${decoded.ok ? '' : ` (got ${decoded.code}: ${decoded.message})`}`,
        );
      } else {
        t.equal(
          decoded.ok ? 'accepted' : decoded.code,
          vector.code,
          `${vector.name}: rejected with ${vector.code}`,
        );
        if (!decoded.ok) t.ok(decoded.message.length > 0, `${vector.name}: the error explains itself`);
        if (vector.id !== undefined)
          t.equal(
            decoded.ok ? 'accepted' : decoded.id,
            vector.id,
            `${vector.name}: names request ${vector.id}`,
          );
      }
    }
  });
}

t.test('a request error carries the request id so the client can match it', async (t) => {
  const decoded = decodeClientMessage(
    JSON.stringify({ type: 'request', id: 'abc', method: 'render.submit', params: { blendFile: 5 } }),
  );
  t.notOk(decoded.ok);
  if (!decoded.ok) {
    t.equal(decoded.id, 'abc');
    t.match(decoded.message, /blendFile/);
  }
});
