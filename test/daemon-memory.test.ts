// The background daemon runs with its own glibc allocator settings (fewer arenas, freed memory given
// back) so an idle daemon stays small after a big upload; the programs it starts (Blender) get the
// user's own GLIBC_TUNABLES, and a setting the user gives wins in the daemon too.
import t from 'tap';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliEnv, runCli } from './helpers/cli.js';
import { DaemonClient } from '../daemon/src/client/daemon-client.js';
import { daemonGlibcTunables, restoreUserGlibcTunables } from '../daemon/src/cli/daemon-control.js';

t.test('daemonGlibcTunables: ours first, the user settings after them (a later setting wins)', async (t) => {
  const ours =
    'glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=131072:glibc.malloc.mmap_threshold=16384';
  t.equal(daemonGlibcTunables(undefined), ours);
  t.equal(daemonGlibcTunables(''), ours);
  t.equal(
    daemonGlibcTunables('glibc.malloc.arena_max=8:glibc.cpu.hwcaps=-AVX2'),
    'glibc.malloc.trim_threshold=131072:glibc.malloc.mmap_threshold=16384:' +
      'glibc.malloc.arena_max=8:glibc.cpu.hwcaps=-AVX2',
  );
});

t.test('restoreUserGlibcTunables puts the user value back (or none)', async (t) => {
  const none: NodeJS.ProcessEnv = { GLIBC_TUNABLES: 'x=1', SKYFARM_USER_GLIBC_TUNABLES: '' };
  restoreUserGlibcTunables(none);
  t.same(none, {});
  const user: NodeJS.ProcessEnv = { GLIBC_TUNABLES: 'x=1:y=2', SKYFARM_USER_GLIBC_TUNABLES: 'y=2' };
  restoreUserGlibcTunables(user);
  t.same(user, { GLIBC_TUNABLES: 'y=2' });
  const foreground: NodeJS.ProcessEnv = { GLIBC_TUNABLES: 'y=2' }; // `skyfarm daemon` run by hand
  restoreUserGlibcTunables(foreground);
  t.same(foreground, { GLIBC_TUNABLES: 'y=2' });
});

for (const user of [undefined, 'glibc.malloc.arena_max=4']) {
  const skip = process.platform === 'linux' ? false : 'reads /proc/<pid>/environ';
  t.test(`skyfarm daemon start (user GLIBC_TUNABLES ${user ?? 'unset'})`, { skip }, async (t) => {
    const dir = t.testdir({});
    const home = join(dir, 'home');
    // A stand-in Blender that records the GLIBC_TUNABLES it was started with.
    const seen = join(dir, 'seen.txt');
    const blender = join(dir, 'blender');
    writeFileSync(
      blender,
      `#!/bin/sh\nprintf '%s' "\${GLIBC_TUNABLES-unset}" > '${seen}'\necho "Blender 4.2.0"\n`,
    );
    chmodSync(blender, 0o755);
    const env = cliEnv(t, home, { SKYFARM_BLENDER: blender });
    delete env['GLIBC_TUNABLES'];
    if (user) env['GLIBC_TUNABLES'] = user;
    const started = await runCli(['daemon', 'start', '--json'], { env });
    t.equal(started.code, 0, started.stderr);
    const pid = (JSON.parse(readFileSync(join(home, 'daemon.json'), 'utf8')) as { pid: number }).pid;
    // glibc may cut the variable at its ':' in place (NUL bytes) while reading it: compare with them back.
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').replaceAll('\0', ':');
    t.ok(
      environ.includes(`:GLIBC_TUNABLES=${daemonGlibcTunables(user)}:`),
      'the daemon process started with its allocator settings',
    );
    if (user) t.ok(daemonGlibcTunables(user).endsWith(':' + user), "the user's arena_max comes last (wins)");
    const client = await DaemonClient.connect({ stateDir: home, clientName: 'test', clientVersion: '1' });
    try {
      await client.request('daemon.info', {});
    } finally {
      client.close();
    }
    t.equal(readFileSync(seen, 'utf8'), user ?? 'unset', 'Blender gets the user GLIBC_TUNABLES');
  });
}
