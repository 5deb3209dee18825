// The local store verifies the same way as S3: the SHA-256 (and size) of the bytes it writes must be
// the blob's name, else nothing appears under that name. No other hash is involved.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LocalObjectStore } from '../daemon/src/store/local-store.js';
import { BlobChangedError } from '../daemon/src/store/object-store.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

t.test('the local store keeps a blob only when its bytes hash to its name', async (t) => {
  const dir = t.testdir({});
  const store = new LocalObjectStore(join(dir, 'store'));
  const data = randomBytes(70_000);
  const file = join(dir, 'f.bin');
  await writeFile(file, data);

  const claimed = sha256(randomBytes(16));
  const error = await store.putBlob(claimed, file, { size: data.length }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(error instanceof BlobChangedError, 'bytes that are not the named blob are refused');
  t.match(error, { expected: claimed, actual: sha256(data) });
  t.equal(await store.hasBlob(claimed), false, 'nothing stored under the wrong name');
  t.same(await readdir(join(dir, 'store', 'cas', claimed.slice(0, 2))), [], 'no partial file left');

  const wrongSize = await store.putBlob(sha256(data), file, { size: data.length - 1 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(wrongSize instanceof BlobChangedError, 'a size that does not match is refused too');

  await store.putBlob(sha256(data), file, { size: data.length });
  t.ok(await store.hasBlob(sha256(data)), 'the right bytes are stored');
  const stored = await readFile(join(dir, 'store', 'cas', sha256(data).slice(0, 2), sha256(data)));
  t.ok(stored.equals(data));
});
