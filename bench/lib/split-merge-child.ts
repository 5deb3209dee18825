// Runs one split-frame merge (daemon/src/split/merge.ts) in a process of its own, so its peak memory
// is the merge's: prints {"seconds", "peakMb", "startMb"} (VmHWM before and after, Linux /proc).
import { readFileSync } from 'node:fs';
import { mergeParts } from '../../daemon/src/split/merge.js';

const peakMb = () =>
  Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN) / 1024;

// argv: <output> <frame samples> then <part.exr> <its samples> pairs.
const [output, frameSamples, ...rest] = process.argv.slice(2);
const parts = [];
for (let i = 0; i + 1 < rest.length; i += 2) parts.push({ file: rest[i]!, samples: Number(rest[i + 1]) });
const startMb = peakMb();
const started = performance.now();
await mergeParts(parts, Number(frameSamples), output!);
const seconds = (performance.now() - started) / 1000;
process.stdout.write(JSON.stringify({ seconds, peakMb: peakMb(), startMb }) + '\n');
