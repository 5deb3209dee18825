// Re-submits of the unchanged project with a warm cache: the daemon that made the first cold upload
// runs `project.upload` again `resubmits` times (same bucket, its hash cache and known-blob record
// filled, the project watched). Timed from sending the request to the reply, which the daemon sends
// after writing the manifest.
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { median, withTimeout } from './proc.js';
import type { BenchContext } from './types.js';
import { firstColdUpload } from './upload.js';

export interface Resubmits {
  seconds: number[];
  bytesUploaded: number[];
  filesHashed: number[];
  daemonSeconds: number[];
  files: number;
  bytes: number;
  coldSeconds: number;
}

export function resubmitUnchanged(ctx: BenchContext): Promise<Resubmits> {
  return ctx.shared('resubmits', async () => {
    const cold = await firstColdUpload(ctx);
    const out: Resubmits = {
      seconds: [],
      bytesUploaded: [],
      filesHashed: [],
      daemonSeconds: [],
      files: cold.result.files,
      bytes: cold.project.bytes,
      coldSeconds: cold.seconds,
    };
    // The hash cache does not trust a file hashed within 100 ms of its last change; the project was
    // written well before, but give the watcher's first scan a moment to settle like a user would.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // SKYFARM_BENCH_PROFILE=file.cpuprofile: a CPU profile of the re-submits alone (daemon and
    // client share this process), for Chrome's DevTools or speedscope.
    const profileTo = process.env['SKYFARM_BENCH_PROFILE'];
    const session = profileTo ? new Session() : undefined;
    if (session) {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    }
    for (let i = 0; i < ctx.sizes.resubmits; i++) {
      const started = performance.now();
      const result = await withTimeout(
        cold.daemon.client.request('project.upload', {
          blendFile: cold.project.blendFile,
          backend: 'aws',
          bucket: cold.bucket,
          dependencies: cold.project.dependencies,
          strict: true,
        }),
        10 * 60_000,
        're-submit (project.upload)',
      );
      out.seconds.push((performance.now() - started) / 1000);
      out.bytesUploaded.push(result.bytesUploaded);
      out.filesHashed.push(result.filesHashed);
      out.daemonSeconds.push(result.seconds);
    }
    if (session && profileTo) {
      const { profile } = await session.post('Profiler.stop');
      await writeFile(profileTo, JSON.stringify(profile));
      session.disconnect();
      ctx.log(`re-submit CPU profile: ${profileTo}`);
    }
    ctx.log(
      `re-submits: ${out.seconds.map((s) => s.toFixed(3)).join(', ')} s (median ${median(out.seconds).toFixed(3)} s)`,
    );
    return out;
  });
}
