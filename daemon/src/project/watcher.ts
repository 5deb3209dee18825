// Watches the folders of recently submitted projects (chokidar) and re-hashes a changed file in the
// background, so the next submit finds its hash in the cache. Bounded: at most `maxProjects` projects
// (least recently submitted dropped first) and `maxFolders` folders in all; only files the project
// uses are re-hashed; editor backups (*.blend1), temporary and hidden files are ignored.
import { basename, dirname, join } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from 'pino';
import { isIgnoredName } from './collect.js';
import type { HashCache } from './hash-cache.js';

export interface ProjectWatcherOptions {
  hashCache: HashCache;
  maxProjects?: number;
  maxFolders?: number;
  /** Quiet time after the last event before a file is re-hashed (default 500 ms). */
  debounceMs?: number;
  log?: Logger;
  /** Called after a background re-hash (tests). */
  onRehashed?: (path: string, sha256: string) => void;
  /** Called when a project's folders start being watched (scanned) anew (tests). */
  onWatchStarted?: (root: string, folders: string[]) => void;
}

interface WatchedProject {
  root: string;
  files: Set<string>;
  folders: string[];
  watcher: FSWatcher;
}

export class ProjectWatcher {
  private readonly projects = new Map<string, WatchedProject>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private queue: Promise<void> = Promise.resolve();
  private readonly controller = new AbortController();
  private closed = false;
  readonly maxProjects: number;
  readonly maxFolders: number;

  constructor(private readonly options: ProjectWatcherOptions) {
    this.maxProjects = options.maxProjects ?? 5;
    this.maxFolders = options.maxFolders ?? 1000;
  }

  get watchedProjects(): string[] {
    return [...this.projects.keys()];
  }

  get watchedFolders(): number {
    let n = 0;
    for (const project of this.projects.values()) n += project.folders.length;
    return n;
  }

  /** Starts (or refreshes) watching a project's folders; resolves once the watcher is ready. */
  async watch(root: string, files: string[]): Promise<void> {
    if (this.closed) return;
    const existing = this.projects.get(root);
    if (existing) {
      this.projects.delete(root);
      // The folders it would watch now (within what the other projects leave of the budget).
      const folders = this.chooseFolders(files, this.maxFolders - this.watchedFolders);
      const chosen = new Set(folders);
      if (folders.length === existing.folders.length && existing.folders.every((f) => chosen.has(f))) {
        // Same folders: keep the watcher (a rescan of a 100,000-file project costs seconds), most
        // recent again.
        existing.files = new Set(files.filter((file) => chosen.has(dirname(file))));
        this.projects.set(root, existing);
        return;
      }
      await existing.watcher.close();
    }
    while (this.projects.size >= this.maxProjects) {
      const oldest = this.projects.keys().next().value as string;
      const dropped = this.projects.get(oldest);
      this.projects.delete(oldest);
      await dropped?.watcher.close();
    }
    const budget = this.maxFolders - this.watchedFolders;
    if (budget <= 0) return;
    const folders = this.chooseFolders(files, budget);
    const folderSet = new Set(folders);
    const fileSet = new Set(files.filter((file) => folderSet.has(dirname(file))));
    // Only the folders themselves are watched: chokidar gives every file it tracks an fs.watch handle
    // of its own (about 10 kB of resident memory each: 100 MB for a 10,000-file project). A folder's
    // handle already reports every write, creation and removal inside it, as `raw` events.
    const watcher = watch(folders, {
      depth: 0,
      ignoreInitial: true,
      persistent: true,
      ignorePermissionErrors: true,
      ignored: (path: string) => !folderSet.has(path),
    });
    const project: WatchedProject = { root, files: fileSet, folders, watcher };
    this.options.onWatchStarted?.(root, folders);
    watcher.on('raw', (_event, name: string | null, details: unknown) => {
      const folder = (details as { watchedPath?: string } | undefined)?.watchedPath;
      if (!name || !folder || !folderSet.has(folder)) return;
      const path = join(folder, name);
      if (project.files.has(path) && !isIgnoredName(basename(path))) this.schedule(path);
    });
    watcher.on('error', (error: unknown) =>
      this.options.log?.warn({ err: error, root }, 'project watcher error'),
    );
    this.projects.set(root, project);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 10_000); // never hold a submit up for a slow folder scan
      watcher.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** The folders holding the most files first (ties by name), when there are more than `budget`. */
  private chooseFolders(files: string[], budget: number): string[] {
    if (budget <= 0) return [];
    const counts = new Map<string, number>();
    for (const file of files) {
      const folder = dirname(file);
      counts.set(folder, (counts.get(folder) ?? 0) + 1);
    }
    return [...counts.entries()]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, budget)
      .map(([folder]) => folder);
  }

  private schedule(path: string): void {
    if (this.closed) return;
    clearTimeout(this.timers.get(path));
    this.timers.set(
      path,
      setTimeout(() => {
        this.timers.delete(path);
        this.queue = this.queue.then(() => this.rehash(path));
      }, this.options.debounceMs ?? 500),
    );
  }

  private async rehash(path: string): Promise<void> {
    if (this.closed) return;
    try {
      const hashed = await this.options.hashCache.hash(path, this.controller.signal);
      this.options.onRehashed?.(path, hashed.sha256);
    } catch (error) {
      // Removed (or replaced by something that is not a file): nothing to remember for it.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') this.options.hashCache.forget(path);
      if (!this.closed) this.options.log?.debug({ err: error, path }, 'background re-hash failed');
    }
  }

  /** Stops every watcher and pending re-hash (daemon shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.controller.abort();
    const watchers = [...this.projects.values()].map((project) => project.watcher.close());
    this.projects.clear();
    await Promise.allSettled(watchers);
    await this.queue.catch(() => undefined);
  }
}
