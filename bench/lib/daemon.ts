// The real daemon, in this process (startDaemon, as the tests and `skyfarm daemon` start it), with a
// private state dir and a client connected over its WebSocket.
import path from 'node:path';
import pino from 'pino';
import { DaemonClient } from '../../daemon/src/client/daemon-client.js';
import { startDaemon, type DaemonOptions, type RunningDaemon } from '../../daemon/src/daemon.js';
import type { BenchContext } from './types.js';

export interface BenchDaemon {
  daemon: RunningDaemon;
  client: DaemonClient;
  stop(): Promise<void>;
}

let serial = 0;

export async function startBenchDaemon(
  ctx: BenchContext,
  env: NodeJS.ProcessEnv,
  label: string,
  options: Pick<DaemonOptions, 'aws'> = {},
): Promise<BenchDaemon> {
  const stateDir = path.join(ctx.tmp, `daemon-${label}-${++serial}`, 'home');
  const daemon = await startDaemon({ stateDir, port: 0, env, logger: pino({ level: 'silent' }), ...options });
  let client: DaemonClient;
  try {
    client = await DaemonClient.connect({ stateDir, clientName: 'bench', clientVersion: '1' });
  } catch (error) {
    await daemon.stop();
    throw error;
  }
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      client.close();
      await daemon.stop();
    })());
  ctx.cleanup(stop);
  return { daemon, client, stop };
}
