// A Blender for SKYFARM_BLENDER whose output stops, mid-frame, right after its first sample line
// (Cycles `Sample 1/N`, Eevee `Rendering 1 / N samples`, any Blender's format) until the test opens
// the gate. Blender itself renders on; what it prints after that line is held back and passed on
// when the gate opens. So "a frame is rendering, its first samples are in" lasts until the test has
// looked, on any machine, however fast: no frame needs to be long enough.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import { blenderCommand } from './scenes.js';

export interface GatedBlender {
  /** The wrapper, for SKYFARM_BLENDER. */
  path: string;
  /** Lets every held (and later) line through; Blender's exit is passed on after it. */
  open(): void;
}

// Runs as the `blender` executable: the real one as a child, stdin and stderr shared, stdout
// filtered line by line. The exit code is Blender's; signals are passed on.
const GATE_SCRIPT = String.raw`
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
const [blender, gate] = JSON.parse(process.env.SKYFARM_TEST_GATE_ARGS);
const child = spawn(blender, process.argv.slice(2), { stdio: ['inherit', 'pipe', 'inherit'] });
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => child.kill(signal));
const FIRST_SAMPLE = /\bSample [1-9]\d*\/\d+|\bRendering [1-9]\d* \/ \d+ samples/;
let held = null; // lines waiting for the gate, once the first sample line went through
let partial = '';
// Open once the test says so, or once its folder is gone (the test ended).
const open = () => existsSync(gate) || !existsSync(dirname(gate));
const release = () => {
  if (held === null || !open()) return false;
  process.stdout.write(held.join(''));
  held = [];
  return true;
};
child.stdout.on('data', (chunk) => {
  const text = partial + chunk.toString('utf8');
  const lines = text.split(/(?<=\n)/);
  partial = lines[lines.length - 1].endsWith('\n') ? '' : lines.pop();
  for (const line of lines) {
    if (held !== null && !release()) held.push(line);
    else {
      process.stdout.write(line);
      if (held === null && !open() && FIRST_SAMPLE.test(line)) held = [];
    }
  }
});
const timer = setInterval(release, 50);
child.on('close', (code, signal) => {
  const finish = () => {
    if (held !== null && !release()) return setTimeout(finish, 50);
    clearInterval(timer);
    process.stdout.write(partial, () => {
      if (signal) process.kill(process.pid, signal);
      else process.exit(code ?? 1);
    });
  };
  finish();
});
`;

export function gatedBlender(t: Test): GatedBlender {
  const dir = mkdtempSync(path.join(tmpdir(), 'skyfarm-gate-'));
  // A test that ends before opening the gate leaves no Blender waiting: no folder, no gate.
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const gate = path.join(dir, 'open');
  const script = path.join(dir, 'gate.mjs');
  writeFileSync(script, GATE_SCRIPT);
  const wrapper = path.join(dir, 'blender');
  const args = JSON.stringify(JSON.stringify([blenderCommand, gate]));
  writeFileSync(
    wrapper,
    `#!/bin/sh\nSKYFARM_TEST_GATE_ARGS=${args} exec '${process.execPath}' '${script}' "$@"\n`,
  );
  chmodSync(wrapper, 0o755);
  return { path: wrapper, open: () => writeFileSync(gate, '') };
}
