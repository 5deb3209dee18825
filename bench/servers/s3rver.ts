// s3rver in its own process (so it never shares an event loop with the uploader being measured):
// `node --import tsx bench/servers/s3rver.ts <directory>` listens on 127.0.0.1, port 0, prints
// `S3RVER_READY <port>` and serves until SIGTERM or until its stdin closes (the bench is gone).
import { createRequire } from 'node:module';

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}

const directory = process.argv[2];
if (!directory) {
  process.stderr.write('usage: s3rver.ts <directory>\n');
  process.exit(1);
}
const S3rver = createRequire(import.meta.url)('s3rver') as new (
  options: Record<string, unknown>,
) => S3rverInstance;
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory });
const { port } = await server.run();
process.stdout.write(`S3RVER_READY ${port}\n`);
const stop = () => {
  server.close().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
// The bench holds our stdin open: when it goes away (even killed), so do we.
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
