// The deployed stack's status and outputs, kept in the daemon's SQLite `kv` table so the AWS backend
// knows the bucket, queues and job definitions without asking CloudFormation each time.
import type { StackInfo } from '../../../protocol/generated/protocol.js';
import type { Db } from '../db/database.js';

const PREFIX = 'aws.stack:';
const LAST = 'aws.stack-last';

export interface RememberedStack extends StackInfo {
  /** ISO time this daemon last saw the stack. */
  seenAt: string;
}

export class RememberedStacks {
  private readonly getStmt;
  private readonly setStmt;
  private readonly deleteStmt;
  private readonly listStmt;

  constructor(
    db: Db,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.getStmt = db.prepare<[string], { value: string }>('SELECT value FROM kv WHERE key = ?');
    this.setStmt = db.prepare<[string, string]>(
      'INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
    );
    this.deleteStmt = db.prepare<[string]>('DELETE FROM kv WHERE key = ?');
    this.listStmt = db.prepare<[string], { value: string }>(
      'SELECT value FROM kv WHERE key LIKE ? ORDER BY key',
    );
  }

  private static key(stackName: string, region: string): string {
    return `${PREFIX}${region}/${stackName}`;
  }

  remember(info: StackInfo): void {
    const region = info.region ?? '';
    const value: RememberedStack = { ...info, seenAt: this.now().toISOString() };
    this.setStmt.run(RememberedStacks.key(info.stackName, region), JSON.stringify(value));
    this.setStmt.run(LAST, RememberedStacks.key(info.stackName, region));
  }

  forget(stackName: string, region: string): void {
    const key = RememberedStacks.key(stackName, region);
    this.deleteStmt.run(key);
    if (this.getStmt.get(LAST)?.value === key) this.deleteStmt.run(LAST);
  }

  /** A named stack (in `region`, or the one seen last under that name), or the stack deployed last. */
  get(stackName?: string, region?: string): RememberedStack | undefined {
    if (stackName && region) return this.read(RememberedStacks.key(stackName, region));
    const last = this.getStmt.get(LAST)?.value;
    const lastStack = last ? this.read(last) : undefined;
    if (!stackName) return lastStack;
    if (lastStack?.stackName === stackName) return lastStack;
    return this.list().find((s) => s.stackName === stackName);
  }

  list(): RememberedStack[] {
    return this.listStmt.all(`${PREFIX}%`).map((row) => JSON.parse(row.value) as RememberedStack);
  }

  private read(key: string): RememberedStack | undefined {
    const row = this.getStmt.get(key);
    return row ? (JSON.parse(row.value) as RememberedStack) : undefined;
  }
}
