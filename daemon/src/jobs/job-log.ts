// One plain-text log per job (Blender's output and the pipeline's own messages) under the state dir.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export class JobLogs {
  constructor(private readonly dir: string) {}

  path(jobId: string): string {
    return join(this.dir, `${jobId}.log`);
  }

  append(jobId: string, line: string): void {
    appendFileSync(this.path(jobId), line.endsWith('\n') ? line : line + '\n', { mode: 0o600 });
  }

  tail(jobId: string, lines = 200): string[] {
    const file = this.path(jobId);
    if (!existsSync(file)) return [];
    const all = readFileSync(file, 'utf8').split('\n');
    if (all.at(-1) === '') all.pop();
    return all.slice(-lines);
  }
}
