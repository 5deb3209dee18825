// Starts a real daemon (port 0, private state dir) for a test and stops it at teardown.
import type { Test } from 'tap';
import { join } from 'node:path';
import pino from 'pino';
import { startDaemon, type RunningDaemon } from '../../daemon/src/daemon.js';
import { DaemonClient } from '../../daemon/src/client/daemon-client.js';

export async function startTestDaemon(
  t: Test,
  options: { stateDir?: string; env?: NodeJS.ProcessEnv; maxParallelRenders?: number } = {},
): Promise<RunningDaemon> {
  // A fresh subfolder: the daemon creates it 0700 (it refuses state dirs other users can read).
  const stateDir = options.stateDir ?? join(t.testdir({}), 'home');
  const daemon = await startDaemon({
    stateDir,
    port: 0,
    env: { ...process.env, ...options.env },
    logger: pino({ level: 'silent' }),
    ...(options.maxParallelRenders !== undefined ? { maxParallelRenders: options.maxParallelRenders } : {}),
  });
  t.teardown(() => daemon.stop());
  return daemon;
}

export async function connectTestClient(t: Test, daemon: RunningDaemon): Promise<DaemonClient> {
  const client = await DaemonClient.connect({
    stateDir: daemon.paths.root,
    clientName: 'test',
    clientVersion: '1',
  });
  t.teardown(() => client.close());
  return client;
}
