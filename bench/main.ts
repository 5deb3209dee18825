// `npm run bench [-- --json] [--quick] [--only a,b] [--files N] [--mib M]`: measures skyfarm against
// its peers (sha256sum, awscli, plain Blender) in one run and prints a table, or the JSON array
// `[{ name, value, unit, baseline?, ratio?, goal, met, note?, details? }]` with --json.
// Progress goes to stderr. Exit code 0 when every metric ran (goals missed or not), 1 on bad usage.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { abortBench, formatTable, fullSizes, quickSizes, runBench } from './lib/harness.js';
import { METRICS } from './metrics/index.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const USAGE = `usage: npm run bench -- [--json] [--quick] [--only name,name] [--files N] [--mib M] [--list]
  --json       print a JSON array instead of the table
  --quick      smaller sizes (finishes in a few minutes on 2 cores)
  --only       run only these metrics (comma-separated names)
  --files/--mib  override the size of the upload/hash/resubmit project
  --list       print the metric names and exit`;

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(1);
}

function positive(flag: string, value: string | undefined): number {
  const n = Number(value);
  if (!value || !Number.isFinite(n) || n <= 0) fail(`${flag} needs a positive number`);
  return n;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let json = false;
  let quick = false;
  let only: string[] | undefined;
  let files: number | undefined;
  let mib: number | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--json') json = true;
    else if (arg === '--quick') quick = true;
    else if (arg === '--only') only = (args[++i] ?? '').split(',').filter(Boolean);
    else if (arg?.startsWith('--only=')) only = arg.slice('--only='.length).split(',').filter(Boolean);
    else if (arg === '--files') files = Math.round(positive(arg, args[++i]));
    else if (arg === '--mib') mib = positive(arg, args[++i]);
    else if (arg === '--list') {
      process.stdout.write(METRICS.map((m) => m.name).join('\n') + '\n');
      return;
    } else if (arg === '--help' || arg === '-h') {
      process.stdout.write(USAGE + '\n');
      return;
    } else fail(`unknown argument ${arg}`);
  }
  const unknown = (only ?? []).filter((name) => !METRICS.some((m) => m.name === name));
  if (unknown.length) fail(`unknown metric(s): ${unknown.join(', ')}`);
  if (only && only.length === 0) fail('--only needs metric names');
  const sizes = quick ? quickSizes() : fullSizes();
  if (files !== undefined) sizes.projectFiles = files;
  if (mib !== undefined) sizes.projectBytes = Math.round(mib * 1024 * 1024);
  const metrics = only ? METRICS.filter((m) => only.includes(m.name)) : METRICS;
  const started = Date.now();
  const log = (message: string) =>
    process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}\n`);
  log(`${quick ? 'quick' : 'full'} run: ${metrics.map((m) => m.name).join(', ')}`);
  const results = await runBench({ quick, sizes, repoRoot, metrics, log });
  log(`finished in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const out = json ? JSON.stringify(results, null, 2) : formatTable(results);
  // Everything the bench started is stopped by now; do not wait for stray keep-alive sockets.
  process.stdout.write(out + '\n', () => process.exit(process.exitCode ?? 0));
}

// Ctrl-C: stop the servers and processes the bench started (by pid), remove its files, exit 130.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`${signal}: stopping what the bench started\n`);
    void abortBench().finally(() => process.exit(130));
  });
}

main().catch((error: unknown) => {
  process.stderr.write(
    `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
