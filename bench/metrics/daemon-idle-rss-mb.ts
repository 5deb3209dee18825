// daemon_idle_rss_mb: resident memory of the real daemon process, started as the CLI and the add-on
// start it (`skyfarm daemon start`), after `idleSeconds` idle while it watches a 10,000-file project: the
// project is uploaded once through `project.upload` (local backend), which makes the daemon watch its
// folders; then the client disconnects and the daemon is left alone (the other metrics run meanwhile
// in other processes). VmRSS from /proc.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { DaemonClient } from '../../daemon/src/client/daemon-client.js';
import { daemonBuild } from '../lib/build.js';
import { makeProject } from '../lib/project.js';
import { check, rssOf, run, sleep, withTimeout } from '../lib/proc.js';
import { isolatedEnv } from '../lib/s3.js';
import type { Measurement, Metric } from '../lib/types.js';

export const daemonIdleRssMb: Metric = {
  name: 'daemon_idle_rss_mb',
  unit: 'MiB',
  goal: { on: 'value', op: '<=', target: 80 },
  async run(ctx) {
    return (await this.setup!(ctx))();
  },
  async setup(ctx): Promise<() => Promise<Measurement>> {
    if (process.platform !== 'linux') throw new Error('reads /proc/<pid>/status (Linux only)');
    const build = await daemonBuild(ctx);
    const { watchFiles, watchFolders, idleSeconds } = ctx.sizes;
    ctx.log(`generating a ${watchFiles}-file project in ${watchFolders} folders`);
    const project = makeProject(ctx.repoRoot, path.join(ctx.tmp, 'watched'), {
      files: watchFiles,
      bytes: watchFiles * 4096,
      folders: watchFolders,
      maxFile: 16 * 1024,
    });
    const home = path.join(ctx.tmp, 'rss-daemon', 'home');
    // Started as the CLI and the add-on start it: `skyfarm daemon start` (a detached process).
    const env = isolatedEnv({ SKYFARM_HOME: home, SKYFARM_PORT: '0', SKYFARM_LOG_LEVEL: 'warn' });
    const started = await run(process.execPath, [build.cli, 'daemon', 'start'], { env, timeoutMs: 120_000 });
    const info = path.join(home, 'daemon.json');
    if (started.code !== 0 || !existsSync(info)) check('skyfarm daemon start', started);
    const pid = (JSON.parse(readFileSync(info, 'utf8')) as { pid: number }).pid;
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const stopDaemon = async () => {
      if (!alive()) return;
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 150 && alive(); i++) await sleep(100);
      if (alive()) process.kill(pid, 'SIGKILL');
    };
    ctx.cleanup(stopDaemon);
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    const startedRss = await rssOf(pid);
    const client = await DaemonClient.connect({ stateDir: home, clientName: 'bench', clientVersion: '1' });
    let uploaded;
    try {
      // The texture folders as dependencies (as cache folders are sent): the list of 10,000 file paths
      // would exceed the protocol's 1 MiB message limit.
      const folders = [...new Set(project.files.map((file) => path.dirname(file)))];
      uploaded = await withTimeout(
        client.request('project.upload', {
          blendFile: project.blendFile,
          backend: 'local',
          dependencies: folders.map((folder) => ({
            path: folder,
            kind: 'cache',
            missing: false,
            relative: true,
          })),
          strict: true,
        }),
        15 * 60_000,
        'project.upload of the watched project',
      );
    } finally {
      client.close();
    }
    if (uploaded.files !== watchFiles) throw new Error(`uploaded ${uploaded.files} of ${watchFiles} files`);
    const afterUpload = await rssOf(pid);
    const idleFrom = Date.now();
    ctx.log(`daemon_idle_rss_mb: daemon ${pid} idles ${idleSeconds} s while the other metrics run`);
    // Read exactly `idleSeconds` later (reading /proc disturbs nothing), whatever else runs meanwhile.
    const sample = sleep(idleSeconds * 1000).then(async () => {
      if (!alive()) throw new Error(`the daemon (pid ${pid}) exited while idle; see ${home}/daemon.log`);
      return { ...(await rssOf(pid)), idled: (Date.now() - idleFrom) / 1000 };
    });
    sample.catch(() => undefined); // awaited by the finisher

    return async () => {
      const idle = await sample;
      const idled = idle.idled;
      const later = alive() ? await rssOf(pid) : undefined;
      const laterSeconds = (Date.now() - idleFrom) / 1000;
      await stopDaemon();
      // For scale: a bare node process that loads nothing.
      const bare = check(
        'bare node',
        await run(
          process.execPath,
          [
            '-e',
            "console.log(require('fs').readFileSync('/proc/self/status','utf8').match(/VmRSS:\\s+(\\d+)/)[1])",
          ],
          { timeoutMs: 60_000 },
        ),
      );
      const bareMb = Number(bare.stdout.trim()) / 1024;
      return {
        value: idle.rssMb,
        note:
          `\`skyfarm daemon start\` from ${build.note} (runs \`${cmdline.replace(/^\S*\/node /, 'node ')}\`); ${watchFiles} files in ${watchFolders} folders uploaded (local) and watched; ` +
          `RSS ${startedRss.rssMb.toFixed(0)} MiB at start, ${afterUpload.rssMb.toFixed(0)} MiB after the upload, ` +
          `${idle.rssMb.toFixed(0)} MiB after ${idled.toFixed(0)} s idle (peak ${idle.peakMb.toFixed(0)}` +
          (later ? `, ${later.rssMb.toFixed(0)} MiB after ${laterSeconds.toFixed(0)} s` : '') +
          `); a bare node process: ${bareMb.toFixed(0)} MiB`,
        details: {
          startMb: startedRss.rssMb,
          afterUploadMb: afterUpload.rssMb,
          idleMb: idle.rssMb,
          peakMb: idle.peakMb,
          idleSeconds: idled,
          ...(later ? { laterMb: later.rssMb, laterSeconds } : {}),
          bareNodeMb: bareMb,
          build: build.note,
          command: cmdline,
        },
      };
    };
  },
};
