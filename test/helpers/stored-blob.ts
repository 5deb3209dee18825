// A manifest entry's bytes as the bucket holds them: its own object (`cas/<sha256>`), or its range of
// its pack (`packs/<sha256>`, from `offset`). Read through a real S3 client, not through the store.
import type { IS3 } from '../../daemon/src/store/s3.js';
import type { ManifestEntry } from '../../daemon/src/project/manifest.js';

export async function storedBytes(s3: IS3, entry: ManifestEntry): Promise<Buffer | undefined> {
  const body =
    entry.pack !== undefined
      ? entry.size === 0
        ? undefined
        : await s3.get(`packs/${entry.pack}`, undefined, {
            start: entry.offset ?? 0,
            end: (entry.offset ?? 0) + entry.size - 1,
          })
      : await s3.get(`cas/${entry.sha256}`);
  if (!body) return entry.pack !== undefined && entry.size === 0 ? Buffer.alloc(0) : undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
