// SQLite holds every job, its frames and its stage states. Each state change is committed here
// before it is acted on or announced, so a restarted daemon knows exactly where every job stands.
import Database from 'better-sqlite3';
import { nativeModuleMismatch } from '../util/native-module.js';

export type Db = Database.Database;

const MIGRATIONS: string[] = [
  `CREATE TABLE jobs (
     id TEXT PRIMARY KEY,
     seq INTEGER NOT NULL,
     name TEXT NOT NULL,
     state TEXT NOT NULL,
     backend TEXT NOT NULL,
     blend_file TEXT NOT NULL,
     scene TEXT NOT NULL,
     frames_spec TEXT NOT NULL,
     output_dir TEXT NOT NULL,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     stages TEXT NOT NULL,
     frames_total INTEGER NOT NULL,
     message TEXT NOT NULL DEFAULT '',
     last_frame TEXT,
     error_code TEXT,
     error_message TEXT,
     spec TEXT NOT NULL
   )`,
  `CREATE TABLE frames (
     job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
     frame INTEGER NOT NULL,
     state TEXT NOT NULL,
     path TEXT,
     seconds REAL,
     message TEXT,
     PRIMARY KEY (job_id, frame)
   )`,
  `CREATE INDEX jobs_by_state ON jobs(state)`,
  `CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
  // Scene upload (daemon/src/project/hash-cache.ts): a file's SHA-256 while path, size, mtime and
  // inode are unchanged.
  `CREATE TABLE file_hashes (
     path TEXT PRIMARY KEY,
     size INTEGER NOT NULL,
     mtime_ns TEXT NOT NULL,
     inode TEXT NOT NULL,
     sha256 TEXT NOT NULL,
     hashed_at_ns TEXT NOT NULL
   ) WITHOUT ROWID`,
  // Blobs last seen in a store (daemon/src/project/known-blobs.ts); confirmed again before use.
  `CREATE TABLE known_blobs (
     store TEXT NOT NULL,
     sha256 TEXT NOT NULL,
     size INTEGER NOT NULL,
     seen_at INTEGER NOT NULL,
     PRIMARY KEY (store, sha256)
   ) WITHOUT ROWID`,
  // AWS backend (daemon/src/batch/aws-store.ts): the farm a job went to and its Batch job ids.
  `CREATE TABLE aws_jobs (
     job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
     farm TEXT NOT NULL,
     device TEXT NOT NULL,
     market TEXT NOT NULL,
     blender_version TEXT NOT NULL,
     notify_email TEXT,
     prepare_only INTEGER NOT NULL DEFAULT 0,
     prepared_at TEXT,
     render_queue TEXT,
     chunks INTEGER,
     copy_batch_id TEXT,
     render_batch_id TEXT,
     publish_batch_id TEXT,
     cleanup_batch_id TEXT,
     canceled_at TEXT,
     finished_at TEXT
   )`,
  // A cancel is carried out on AWS before finished_at is set (aws_jobs.finished_at IS NULL with
  // canceled_at set: a restarted daemon terminates the Batch jobs). Jobs canceled before that rule
  // were carried out when they were marked canceled.
  `UPDATE aws_jobs SET finished_at = canceled_at
     WHERE canceled_at IS NOT NULL AND finished_at IS NULL
       AND job_id IN (SELECT id FROM jobs WHERE state = 'canceled')`,
  // Scene probes (daemon/src/render/probe-cache.ts): a probe's result while the files it read are unchanged.
  `CREATE TABLE probe_cache (
     key TEXT PRIMARY KEY,
     result TEXT NOT NULL,
     checks TEXT NOT NULL,
     used_at INTEGER NOT NULL
   )`,
  // Small blobs travel in packs (daemon/src/project/pack-writer.ts): where a known blob is, when it
  // is not cas/<sha256> itself.
  `ALTER TABLE known_blobs ADD COLUMN pack TEXT`,
  `ALTER TABLE known_blobs ADD COLUMN pack_offset INTEGER`,
  `CREATE TABLE price_cache (key TEXT PRIMARY KEY, value TEXT NOT NULL, fetched_at INTEGER NOT NULL)`,
  `ALTER TABLE jobs ADD COLUMN cost TEXT`,
  `ALTER TABLE aws_jobs ADD COLUMN max_cost_usd REAL`,
  // What the job's upload stored (JSON UploadStats): its S3/EFS storage and requests line.
  `ALTER TABLE aws_jobs ADD COLUMN upload_stats TEXT`,
];

export function openDatabase(path: string): Db {
  let db: Db;
  try {
    db = new Database(path); // loads the native module on first use
  } catch (error) {
    throw nativeModuleMismatch(error, 'better-sqlite3') ?? error;
  }
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  // better-sqlite3 builds SQLite with a 16 MB page cache; the daemon's tables are small and the OS
  // caches the file anyway. A large cache filled during a 10,000-file upload and then sat in the
  // idle daemon's heap (daemon_idle_rss_mb).
  db.pragma('cache_size = -512');
  const version = db.pragma('user_version', { simple: true }) as number;
  const migrate = db.transaction(() => {
    for (let i = version; i < MIGRATIONS.length; i++) db.exec(MIGRATIONS[i]!);
    db.pragma(`user_version = ${MIGRATIONS.length}`);
  });
  migrate();
  return db;
}
