// s3rver in its own process (so it never shares an event loop with the uploader being measured):
// `node --openssl-legacy-provider --import tsx bench/servers/s3rver.ts <directory> [bucket…]
// [--allow-mismatched-signatures]` listens on 127.0.0.1, port 0, creates the buckets named, prints
// `S3RVER_READY <port>` and serves until SIGTERM or until its stdin closes (the parent is gone).
// s3rver 3.7 encrypts its ListObjectsV2 continuation token with DES, which OpenSSL 3 offers only
// with its legacy provider: without `--openssl-legacy-provider` every listing longer than one page
// (1,000 keys) answers 500. Tests start it through test/fakes/s3rver/process.ts.
import { createRequire } from 'node:module';
import { makeS3rverPutsAtomic } from '../../test/fakes/s3rver/atomic-puts.js';

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}

const args = process.argv.slice(2);
const flags = new Set(args.filter((arg) => arg.startsWith('--')));
const [directory, ...buckets] = args.filter((arg) => !arg.startsWith('--'));
if (!directory) {
  process.stderr.write('usage: s3rver.ts <directory> [bucket…] [--allow-mismatched-signatures]\n');
  process.exit(1);
}
makeS3rverPutsAtomic();
const S3rver = createRequire(import.meta.url)('s3rver') as new (
  options: Record<string, unknown>,
) => S3rverInstance;
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory,
  configureBuckets: buckets.map((name) => ({ name })),
  ...(flags.has('--allow-mismatched-signatures') ? { allowMismatchedSignatures: true } : {}),
});
const { port } = await server.run();
process.stdout.write(`S3RVER_READY ${port}\n`);
const stop = () => {
  server.close().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
// The parent holds our stdin open: when it goes away (even killed), so do we.
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
