// The last few manifests and the SHA-256 of their canonical bytes: an unchanged re-submit of 100,000
// files assembles the same files in the same order again, and checking them entry by entry against
// the last draft costs a fraction of building the file object, sorting it, serialising some 15 MB of
// JSON and hashing that. Remembered manifests are dropped `lingerMs` after their last use, like the
// rows the upload read.
import { canonicalManifest, type Manifest, type ManifestDraft, type ManifestEntry } from './manifest.js';

const REMEMBERED = 2;

interface Remembered {
  draft: ManifestDraft;
  restJson: string;
  manifest: Manifest;
  sha256: string;
}

function sameEntry(a: ManifestEntry, b: ManifestEntry): boolean {
  return (
    a.sha256 === b.sha256 &&
    a.size === b.size &&
    a.mode === b.mode &&
    a.pack === b.pack &&
    a.offset === b.offset
  );
}

/** Whether two drafts list the same files with the same entries in the same order. */
function sameFiles(a: ManifestDraft, b: ManifestDraft): boolean {
  if (a.paths.length !== b.paths.length) return false;
  for (let i = 0; i < a.paths.length; i++) {
    if (a.paths[i] !== b.paths[i] || !sameEntry(a.entries[i]!, b.entries[i]!)) return false;
  }
  return true;
}

export class ManifestDigests {
  private remembered: Remembered[] = [];
  private expiry: NodeJS.Timeout | undefined;

  constructor(private readonly options: { lingerMs: number }) {}

  /**
   * The manifest in canonical order and its SHA-256 (`canonicalManifest`'s): a remembered one when
   * the draft is the same, else built and hashed.
   */
  digest(draft: ManifestDraft): { manifest: Manifest; sha256: string } {
    const restJson = JSON.stringify(draft.rest);
    let found = this.remembered.find((r) => r.restJson === restJson && sameFiles(draft, r.draft));
    if (!found) {
      const built = canonicalManifest(draft);
      if (this.options.lingerMs <= 0) return built;
      found = { draft, restJson, ...built };
    }
    const use = found;
    this.remembered = [use, ...this.remembered.filter((r) => r !== use)].slice(0, REMEMBERED);
    if (this.expiry) clearTimeout(this.expiry);
    this.expiry = setTimeout(() => (this.remembered = []), this.options.lingerMs);
    this.expiry.unref();
    return { manifest: use.manifest, sha256: use.sha256 };
  }
}
