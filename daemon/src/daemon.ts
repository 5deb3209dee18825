// Assembles the daemon from its parts and runs it: state dir, lock, token, database, backends,
// services, app. The CLI's `skyfarm daemon` and the tests both start it through `startDaemon`.
import { writeFileSync, rmSync, renameSync } from 'node:fs';
import v8 from 'node:v8';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { buildApp } from './app.js';
import { ensureStateDir, type StatePaths } from './config/state-dir.js';
import { loadOrCreateToken } from './config/token.js';
import { acquireDaemonLock, type DaemonInfo } from './config/daemon-lock.js';
import { openDatabase, type Db } from './db/database.js';
import { JobRepo } from './jobs/job-repo.js';
import { JobLogs } from './jobs/job-log.js';
import { JobService } from './jobs/job-service.js';
import { LocalBackend } from './pipeline/local-backend.js';
import { WarmBlender } from './render/warm-blender.js';
import { LocalObjectStore } from './store/local-store.js';
import { ProjectService } from './project/service.js';
import { RpcRegistry } from './rpc/registry.js';
import { createAwsWiring, registerAwsHandlers, type AwsWiringOptions } from './batch/wiring.js';
import { farmFromStackOutputs } from './batch/farm.js';
import { objectsStored } from './batch/prepare.js';
import { writeManifest } from './project/upload.js';
import { registerJobHandlers } from './rpc/job-handlers.js';
import { handleLargeLists } from './project/large-lists.js';
import { sweepDependencyLists } from './protocol/dependency-list.js';
import { setupStack } from './stack/setup.js';
import { setupImages, type ImageOptions } from './images/setup.js';
import { USABLE_STATUSES } from './stack/service.js';
import { ClientHub } from './ws/hub.js';
import { Semaphore } from './util/semaphore.js';
import { IdleMemory } from './util/idle-memory.js';
import { sharedResult } from './util/shared-result.js';
import { probeBlend as probeBlendUnbounded, resolveExecutable } from './render/blender.js';
import { blenderCommand, rememberedFindBlender } from './render/blender-check.js';
import { withProbeSlots } from './render/probe-slots.js';
import { ProbeCache } from './render/probe-cache.js';
import { DAEMON_VERSION } from './version.js';
import { SkyfarmError } from './errors.js';

export interface DaemonOptions {
  stateDir: string;
  port?: number;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  maxParallelRenders?: number;
  /** AWS backend: stack lookup, poll timing and test hooks. */
  aws?: AwsWiringOptions;
  /** Worker images (skyfarm images): cache, build polling and time limit. */
  images?: ImageOptions;
  /** Node's process warnings go to the daemon's log, not stderr (the daemon process itself sets this). */
  logProcessWarnings?: boolean;
  /**
   * Once no request has run for this long, V8 is asked to give memory back (util/idle-memory.ts); the
   * daemon process sets it, in-process daemons (tests, bench) leave it off.
   */
  idleMemoryMs?: number;
}

export interface RunningDaemon {
  app: FastifyInstance;
  port: number;
  token: string;
  paths: StatePaths;
  db: Db;
  jobs: JobService;
  hub: ClientHub;
  registry: RpcRegistry;
  projects: ProjectService;
  stop(): Promise<void>;
}

export function parsePort(value: string | undefined): number {
  if (value === undefined || value === '') return 0;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new SkyfarmError(
      'BAD_ARGUMENT',
      `SKYFARM_PORT must be a port number (0 picks a free one), not "${value}"`,
    );
  }
  return port;
}

/**
 * Node prints warnings (`(node:PID) MaxListenersExceededWarning: …`, the AWS SDK's Node.js version
 * notice) on stderr: the user's terminal, or the daemon.log tail `daemon start` shows when the
 * daemon fails. The daemon logs them instead. Returns the undo.
 */
function logProcessWarnings(log: Logger): () => void {
  const previous = process.listeners('warning');
  process.removeAllListeners('warning');
  const onWarning = (warning: Error) =>
    log.warn({ warning: warning.name, stack: warning.stack }, `node: ${warning.message}`);
  process.on('warning', onWarning);
  return () => {
    process.off('warning', onWarning);
    for (const listener of previous) process.on('warning', listener);
  };
}

export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const env = options.env ?? process.env;
  const paths = ensureStateDir(options.stateDir);
  const lock = acquireDaemonLock(paths.lock, paths.daemonInfo, paths.root);
  let releaseLock = lock.release;
  let db: Db | undefined;
  let projects: ProjectService | undefined;
  try {
    const log = options.logger ?? pino({ level: env['SKYFARM_LOG_LEVEL'] ?? 'info' });
    if (lock.stale || lock.replacedLegacyLock !== undefined) {
      const pid = lock.stale?.pid ?? lock.replacedLegacyLock;
      log.warn(
        { stalePid: pid ?? null, stalePort: lock.stale?.port ?? null },
        `the previous skyfarm daemon${pid ? ` (pid ${pid})` : ''} ended without stopping cleanly; replaced its ${lock.stale ? 'daemon.json' : 'lock file'}`,
      );
    }
    if (options.logProcessWarnings) {
      const restore = logProcessWarnings(log);
      const release = releaseLock;
      releaseLock = () => {
        restore();
        release();
      };
    }
    const token = loadOrCreateToken(paths.token);
    db = openDatabase(paths.database);
    const repo = new JobRepo(db);
    const logs = new JobLogs(paths.logs);
    const hub = new ClientHub();
    // daemon.info and every submit ask for Blender: a burst of requests shares one `blender --version`
    // run (instead of starting a Blender each), and a working one is remembered for a minute.
    // The answer is kept in SQLite per binary (path and identity): a daemon restart or a submit after
    // the minute starts no `blender --version` while the binary is the same file.
    const blender = sharedResult(rememberedFindBlender(db, env), 60_000);
    const localStore = new LocalObjectStore(paths.store);
    const stack = setupStack({ db, env });
    const images = setupImages({ env, stack, ...(options.images ? { options: options.images } : {}) });
    // One pool for submits and uploads: both inspect scenes with Blender. An unchanged scene is not
    // probed again (the cache is checked before a slot is taken).
    const probeBlend = new ProbeCache(db).wrap(withProbeSlots(probeBlendUnbounded));
    projects = new ProjectService({
      db,
      localStore,
      env,
      // `--stack-name N`: the stack's BucketName output; neither flag: SKYFARM_AWS_BUCKET or the known stack.
      resolveStackBucket: (stackName) => stack.resolveBucket(stackName),
      defaultBucket: () => {
        const known = stack.remembered.get();
        return (
          env['SKYFARM_AWS_BUCKET'] ||
          (known && USABLE_STATUSES.has(known.status) ? known.outputs['BucketName'] : undefined)
        );
      },
      notify: hub.notify,
      findBlender: blender,
      probeBlend,
      log,
    });
    const projectService = projects;
    const idleMemory =
      options.idleMemoryMs !== undefined
        ? new IdleMemory({ idleMs: options.idleMemoryMs, setFlags: (flags) => v8.setFlagsFromString(flags) })
        : undefined;
    // A job's upload runs after render.submit has answered: busy too, at full speed.
    const uploadWhileBusy: typeof projectService.upload = (request) =>
      idleMemory ? idleMemory.during(() => projectService.upload(request)) : projectService.upload(request);
    const local = new LocalBackend({
      repo,
      logs,
      store: localStore,
      uploadProject: uploadWhileBusy,
      workDir: paths.work,
      notify: hub.notify,
      log,
      renderSlots: new Semaphore(options.maxParallelRenders ?? 1),
      findBlender: blender,
      warm: new WarmBlender(),
    });
    const aws = createAwsWiring({
      db,
      repo,
      logs,
      notify: hub.notify,
      log,
      stateDir: paths.root,
      env,
      options: {
        // The farm of `--stack-name N`: the stack's outputs and region.
        resolveStack: async (stackName) => {
          const info = await stack.resolveStack(stackName);
          return { ...farmFromStackOutputs(info.outputs), ...(info.region ? { region: info.region } : {}) };
        },
        // Neither --stack-name nor --bucket: the stack daemon.info offers (deployed or seen ready last).
        defaultStack: () => {
          const known = stack.remembered.get();
          return known && USABLE_STATUSES.has(known.status) ? known.stackName : undefined;
        },
        // Jobs upload through the project service (hash cache, known blobs, integrity-checked S3 store).
        upload: async (request) => {
          const store = await projectService.storeFor({ backend: 'aws', bucket: request.bucket.name });
          const { bucket: _bucket, ...rest } = request;
          const result = await uploadWhileBusy({ ...rest, store });
          const manifestKey = await writeManifest(store, result, request.jobId);
          return {
            manifestKey,
            missing: result.missing,
            files: result.files,
            bytesUploaded: result.bytesUploaded,
            bytesTotal: result.bytesTotal,
            objectsStored: objectsStored(result),
          };
        },
        // A render for a Blender version without a worker image is refused before anything is uploaded.
        requireImage: (target, version, role) => images.service.requireImage(target, version, role),
        imageVersions: async (target) =>
          (await images.service.images(target.repository, target.region)).map((image) => image.version),
        renderDefinition: (farm, version) => images.service.renderDefinition(farm, version),
        ...options.aws,
      },
    });
    const jobs = new JobService({
      repo,
      logs,
      notify: hub.notify,
      local,
      findBlender: blender,
      blenderPath: () => resolveExecutable(blenderCommand(env), env),
      probeBlend,
      aws,
    });
    const registry = new RpcRegistry(idleMemory);
    registerJobHandlers(registry, jobs);
    stack.register(registry);
    images.register(registry);
    registerAwsHandlers(registry, jobs, aws.backend, aws.costs, (params) => aws.queueCost(params));
    registry.register('project.upload', (params, context) =>
      projectService.uploadRequest(params, context.signal),
    );
    // 100,000-file projects: dependency lists by reference, missing lists bounded in replies.
    handleLargeLists(registry, paths.root, { rememberListsMs: projectService.trustKnownMs });
    sweepDependencyLists(paths.root).catch(() => undefined);
    registry.register('daemon.info', async () => {
      let localInfo: { available: boolean; reason?: string } = { available: true };
      try {
        await blender();
      } catch (error) {
        localInfo = { available: false, reason: (error as Error).message };
      }
      return {
        version: DAEMON_VERSION,
        pid: process.pid,
        backends: {
          local: localInfo,
          aws: env['SKYFARM_AWS_BUCKET'] ? { available: true } : stack.backendInfo(),
        },
      };
    });
    const app = await buildApp({ token, version: DAEMON_VERSION, registry, hub, logger: log });
    await app.listen({ host: '127.0.0.1', port: options.port ?? parsePort(env['SKYFARM_PORT']) });
    const port = (app.server.address() as AddressInfo).port;
    const info: DaemonInfo = { pid: process.pid, port, version: DAEMON_VERSION };
    writeFileSync(`${paths.daemonInfo}.tmp`, JSON.stringify(info) + '\n', { mode: 0o600 });
    renameSync(`${paths.daemonInfo}.tmp`, paths.daemonInfo);
    const resumed = jobs.resumeUnfinished();
    aws.costs.start();
    log.info(
      { port, stateDir: paths.root, resumed: resumed.length },
      'skyfarm daemon listening on 127.0.0.1',
    );
    const openDb = db;
    let stopped: Promise<void> | undefined;
    return {
      app,
      port,
      token,
      paths,
      db: openDb,
      jobs,
      hub,
      registry,
      projects: projectService,
      stop: () =>
        (stopped ??= (async () => {
          idleMemory?.close();
          await app.close();
          await local.stopAll();
          await aws.costs.stop();
          await aws.backend.stopAll();
          aws.close();
          images.close();
          await projectService.close();
          openDb.close();
          rmSync(paths.daemonInfo, { force: true });
          releaseLock();
        })()),
    };
  } catch (error) {
    await projects?.close();
    db?.close();
    releaseLock();
    throw error;
  }
}
