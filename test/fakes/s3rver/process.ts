// s3rver in a child process started with `--openssl-legacy-provider`: s3rver 3.7 encrypts its
// ListObjectsV2 continuation token with DES, which Node's OpenSSL 3 refuses without that provider,
// so an s3rver inside the test process answers every listing longer than 1,000 keys with a 500.
// The server script is the bench's (bench/servers/s3rver.ts); it exits when its stdin closes, so it
// never outlives the test, and is stopped by its pid.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const SERVER = path.join(REPO_ROOT, 'bench', 'servers', 's3rver.ts');

export interface S3rverProcess {
  endpoint: string;
  pid: number;
  close(): Promise<void>;
}

export async function startS3rverProcess(
  directory: string,
  buckets: string[],
  options: { allowMismatchedSignatures?: boolean } = {},
): Promise<S3rverProcess> {
  const child = spawn(
    process.execPath,
    [
      '--openssl-legacy-provider',
      '--import',
      'tsx',
      SERVER,
      directory,
      ...buckets,
      ...(options.allowMismatchedSignatures ? ['--allow-mismatched-signatures'] : []),
    ],
    { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let err = '';
  child.stderr.on('data', (chunk: Buffer) => (err = (err + chunk.toString()).slice(-4000)));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`s3rver did not start in 30 s: ${err}`)), 30_000);
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /S3RVER_READY (\d+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited ${code}: ${err}`));
    });
  });
  child.stdout.resume();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
