#!/usr/bin/env node
// skyfarm command line: `skyfarm <command> [options]`. Exit codes: 0 success, 1 usage/input error,
// 2 job failed, 3 canceled, 4 daemon unreachable.
import { parseArgs } from 'node:util';
import { stateDirFromEnv } from '../config/state-dir.js';
import { SkyfarmError } from '../errors.js';
import { startDaemon } from '../daemon.js';
import { readDaemonInfo } from '../config/daemon-lock.js';
import { DAEMON_VERSION } from '../version.js';
import { daemonStatus, restoreUserGlibcTunables, startDetachedDaemon, stopDaemon } from './daemon-control.js';
import { EXIT, exitCodeForError } from './exit-codes.js';
import {
  cancelCommand,
  demoCommand,
  jobsCommand,
  logsCommand,
  renderCommand,
  statusCommand,
  uploadCommand,
  type CliContext,
} from './commands.js';
import { deployCommand, destroyCommand, stackCommand, stackFlags } from '../stack/cli.js';
import { awsRenderOptions, downloadCommand } from './aws-commands.js';
import { costCommand, queueCostCommand } from './cost-command.js';
import { imagesBuildCommand, imagesCommand } from '../images/cli.js';
import { addonCommand } from '../addon/cli.js';

const USAGE = `skyfarm ${DAEMON_VERSION} — render Blender scenes on this machine or AWS Batch

Usage:
  skyfarm render FILE.blend [--frames SPEC] [--chunk-size N] [--split N] [--scene NAME] [--backend local|aws]
                            [--output DIR] [--name NAME] [--strict] [--wait] [--json]
  skyfarm upload FILE.blend [--backend local|aws] [--bucket B | --stack-name N] [--scene NAME]
                            [--strict] [--json]   upload the scene and every file it uses
  skyfarm jobs [--json]                 list jobs
  skyfarm status JOB [--json]           one job in detail
  skyfarm cancel JOB [--json]           stop a job
  skyfarm cost JOB [--json]             an AWS job's cost so far (≈, from AWS's prices), projection, budget
  skyfarm cost --queue [NAME] [--device cpu|gpu] [--market spot|on-demand] [--bucket B | --stack-name N] [--json]
                                        a render queue's price per hour at full scale (render --backend aws
                                        says it before submitting)
  skyfarm render FILE.blend --backend aws [--bucket B | --stack-name N] [--device cpu|gpu]
                            [--market spot|on-demand] [--blender-version X] [--notify-email A]
                            [--max-cost USD] [--prepare-only] ...   render on AWS Batch (--prepare-only: upload,
                            write job.json and print {"jobId"} for running skyfarm-worker by hand)
  skyfarm logs JOB [--tail N] [--chunk N] [--json]  a job's log (--chunk: that AWS render chunk's log)
  skyfarm download JOB [--output DIR]   fetch an AWS job's published frames
  skyfarm deploy [--stack-name N] [--region R] [--profile P] [--gpu|--no-gpu] [--max-vcpus N]
                 [--notify-email A] [--yes] [--json]     create or update the AWS farm (CloudFormation)
  skyfarm stack [--stack-name N] [--region R] [--profile P] [--json]   the farm's status and outputs
  skyfarm destroy [--stack-name N] [--region R] [--profile P] [--yes] [--json]
                                        empty the farm's bucket and delete the stack
  skyfarm images [--stack-name N] [--json]   Blender versions with a worker image in the farm
  skyfarm images build --blender-version X [--stack-name N] [--timeout MIN] [--json]
                                        build and push the worker image for Blender X (CodeBuild;
                                        followed for at most MIN minutes, default 90)
  skyfarm daemon                        run the daemon in the foreground
  skyfarm daemon start|stop|status      manage the background daemon
  skyfarm demo [--output DIR]           render the bundled example scene
  skyfarm addon install [--blender PATH]… [--json]   install and enable the Blender add-on in every
                                        Blender found (or those named); run again to upgrade
  skyfarm addon status [--blender PATH]… [--json]    each Blender, its version, the add-on installed
  skyfarm addon uninstall [--blender PATH]… [--json] remove the add-on

Frame specs: 1-250, 1-10,20,30-40, 1-100x5 (every 5th frame).
Environment: SKYFARM_HOME (state dir), SKYFARM_PORT (0 = any free port), SKYFARM_BLENDER (Blender binary).
Exit codes: 0 success, 1 usage or input error, 2 job failed, 3 canceled, 4 daemon unreachable.`;

class UsageError extends Error {}

function positiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`${flag} must be a positive whole number, not "${value}"`);
  return n;
}

function nonNegativeInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new UsageError(`${flag} must be a whole number ≥ 0, not "${value}"`);
  return n;
}

function oneJob(positionals: string[], command: string): string {
  if (positionals.length !== 1) throw new UsageError(`usage: skyfarm ${command} JOB`);
  return positionals[0]!;
}

async function runDaemonForeground(ctx: CliContext): Promise<number> {
  restoreUserGlibcTunables(ctx.env);
  const daemon = await startDaemon({
    stateDir: ctx.stateDir,
    env: ctx.env,
    logProcessWarnings: true,
    // 10 s without a request: give memory back (SKYFARM_IDLE_MEMORY=0: never).
    ...(ctx.env['SKYFARM_IDLE_MEMORY'] === '0' ? {} : { idleMemoryMs: 10_000 }),
  });
  await new Promise<void>((resolve) => {
    const stop = () => {
      clearInterval(watchdog);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    // A daemon whose state dir was deleted (or taken over) can no longer be found by any client:
    // it shuts down instead of lingering as an orphan.
    const watchdog = setInterval(() => {
      if (readDaemonInfo(daemon.paths.daemonInfo)?.pid !== process.pid) {
        ctx.stderr.write(
          `skyfarm: ${daemon.paths.daemonInfo} is gone or names another daemon; shutting down\n`,
        );
        stop();
      }
    }, 2000);
  });
  await daemon.stop();
  return EXIT.ok;
}

export async function main(argv: string[], ctx: CliContext): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    ctx.stdout.write(USAGE + '\n');
    return command === undefined ? EXIT.input : EXIT.ok;
  }
  if (command === '--version' || command === 'version') {
    ctx.stdout.write(`${DAEMON_VERSION}\n`);
    return EXIT.ok;
  }
  const parsed = parseArgs({
    args: rest,
    allowPositionals: true,
    strict: true,
    options: {
      json: { type: 'boolean', default: false },
      wait: { type: 'boolean', default: false },
      strict: { type: 'boolean' },
      frames: { type: 'string' },
      'chunk-size': { type: 'string' },
      split: { type: 'string' },
      scene: { type: 'string' },
      backend: { type: 'string' },
      output: { type: 'string' },
      name: { type: 'string' },
      tail: { type: 'string' },
      bucket: { type: 'string' },
      'stack-name': { type: 'string' },
      region: { type: 'string' },
      profile: { type: 'string' },
      gpu: { type: 'boolean' },
      'no-gpu': { type: 'boolean' },
      'max-vcpus': { type: 'string' },
      yes: { type: 'boolean', default: false },
      device: { type: 'string' },
      market: { type: 'string' },
      'blender-version': { type: 'string' },
      'notify-email': { type: 'string' },
      'max-cost': { type: 'string' },
      'prepare-only': { type: 'boolean' },
      queue: { type: 'boolean' },
      chunk: { type: 'string' },
      timeout: { type: 'string' },
      blender: { type: 'string', multiple: true },
    },
  });
  const { values, positionals } = parsed;
  const json = values.json ?? false;
  switch (command) {
    case 'daemon': {
      const action = positionals[0];
      if (action === undefined) return runDaemonForeground(ctx);
      if (action === 'start') {
        const running = await daemonStatus(ctx.stateDir);
        const info = running ?? (await startDetachedDaemon(ctx.stateDir, ctx.env));
        ctx.stdout.write(
          json
            ? JSON.stringify({ running: true, ...info, stateDir: ctx.stateDir }) + '\n'
            : `skyfarm daemon ${running ? 'already running' : 'started'}: pid ${info.pid}, port ${info.port}, state dir ${ctx.stateDir}\n`,
        );
        return EXIT.ok;
      }
      if (action === 'stop') {
        const info = await stopDaemon(ctx.stateDir);
        ctx.stdout.write(
          json
            ? JSON.stringify({ stopped: Boolean(info), ...(info ?? {}) }) + '\n'
            : info
              ? `stopped the daemon (pid ${info.pid})\n`
              : 'no daemon was running\n',
        );
        return EXIT.ok;
      }
      if (action === 'status') {
        const info = await daemonStatus(ctx.stateDir);
        ctx.stdout.write(
          json
            ? JSON.stringify(
                info
                  ? { running: true, ...info, stateDir: ctx.stateDir }
                  : { running: false, stateDir: ctx.stateDir },
              ) + '\n'
            : info
              ? `running: pid ${info.pid}, port ${info.port}, version ${info.version}, state dir ${ctx.stateDir}\n`
              : `not running (state dir ${ctx.stateDir})\n`,
        );
        return info ? EXIT.ok : EXIT.unreachable;
      }
      throw new UsageError('usage: skyfarm daemon [start|stop|status]');
    }
    case 'render': {
      if (positionals.length !== 1) throw new UsageError('usage: skyfarm render FILE.blend [options]');
      const backend = values.backend;
      if (backend !== undefined && backend !== 'local' && backend !== 'aws') {
        throw new UsageError(`--backend must be local or aws, not "${backend}"`);
      }
      const chunkSize = positiveInt(values['chunk-size'], '--chunk-size');
      const split = positiveInt(values.split, '--split');
      let aws;
      try {
        aws = awsRenderOptions(values);
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
      if (aws && backend !== 'aws') throw new UsageError('AWS options need --backend aws');
      return renderCommand(ctx, {
        ...(aws ? { aws } : {}),
        file: positionals[0]!,
        wait: values.wait ?? false,
        json,
        ...(values.frames !== undefined ? { frames: values.frames } : {}),
        ...(chunkSize !== undefined ? { chunkSize } : {}),
        ...(split !== undefined ? { split } : {}),
        ...(backend !== undefined ? { backend } : {}),
        ...(values.output !== undefined ? { output: values.output } : {}),
        ...(values.scene !== undefined ? { scene: values.scene } : {}),
        ...(values.name !== undefined ? { name: values.name } : {}),
        ...(values.strict !== undefined ? { strict: values.strict } : {}),
      });
    }
    case 'upload': {
      if (positionals.length !== 1) throw new UsageError('usage: skyfarm upload FILE.blend [options]');
      const backend = values.backend;
      if (backend !== undefined && backend !== 'local' && backend !== 'aws') {
        throw new UsageError(`--backend must be local or aws, not "${backend}"`);
      }
      return uploadCommand(ctx, {
        file: positionals[0]!,
        json,
        strict: values.strict ?? false,
        ...(backend !== undefined ? { backend } : {}),
        ...(values.bucket !== undefined ? { bucket: values.bucket } : {}),
        ...(values['stack-name'] !== undefined ? { stackName: values['stack-name'] } : {}),
        ...(values.scene !== undefined ? { scene: values.scene } : {}),
      });
    }
    case 'jobs':
      return jobsCommand(ctx, json);
    case 'status':
      return statusCommand(ctx, oneJob(positionals, 'status'), json);
    case 'cancel':
      return cancelCommand(ctx, oneJob(positionals, 'cancel'), json);
    case 'cost': {
      if (!values.queue) return costCommand(ctx, oneJob(positionals, 'cost'), json);
      if (positionals.length > 1)
        throw new UsageError(
          'usage: skyfarm cost --queue [NAME] [--device cpu|gpu] [--market spot|on-demand]',
        );
      let aws;
      try {
        aws = awsRenderOptions({
          device: values.device,
          market: values.market,
          bucket: values.bucket,
          'stack-name': values['stack-name'],
        });
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
      return queueCostCommand(
        ctx,
        {
          ...(aws?.stackName !== undefined ? { stackName: aws.stackName } : {}),
          ...(aws?.bucket !== undefined ? { bucket: aws.bucket } : {}),
          ...(aws?.device !== undefined ? { device: aws.device } : {}),
          ...(aws?.market !== undefined ? { market: aws.market } : {}),
          ...(positionals[0] !== undefined ? { queue: positionals[0] } : {}),
        },
        json,
      );
    }
    case 'logs':
      return logsCommand(
        ctx,
        oneJob(positionals, 'logs'),
        positiveInt(values.tail, '--tail'),
        json,
        values.chunk !== undefined ? nonNegativeInt(values.chunk, '--chunk') : undefined,
      );
    case 'download':
      return downloadCommand(ctx, oneJob(positionals, 'download'), values.output, json);
    case 'deploy': {
      if (positionals.length) throw new UsageError('usage: skyfarm deploy [options]');
      if (values.gpu && values['no-gpu']) throw new UsageError('--gpu and --no-gpu contradict each other');
      const maxVcpus = positiveInt(values['max-vcpus'], '--max-vcpus');
      const gpu = values.gpu ? true : values['no-gpu'] ? false : undefined;
      return deployCommand(ctx, {
        ...stackFlags(values),
        json,
        yes: values.yes ?? false,
        ...(gpu !== undefined ? { gpu } : {}),
        ...(maxVcpus !== undefined ? { maxVcpus } : {}),
        ...(values['notify-email'] !== undefined ? { notifyEmail: values['notify-email'] } : {}),
      });
    }
    case 'stack':
      if (positionals.length) throw new UsageError('usage: skyfarm stack [--stack-name N] [--json]');
      return stackCommand(ctx, { ...stackFlags(values), json });
    case 'destroy':
      if (positionals.length) throw new UsageError('usage: skyfarm destroy [--stack-name N] [--yes]');
      return destroyCommand(ctx, { ...stackFlags(values), json, yes: values.yes ?? false });
    case 'images': {
      const flags = {
        json,
        ...(values['stack-name'] !== undefined ? { stackName: values['stack-name'] } : {}),
      };
      if (positionals.length === 0) return imagesCommand(ctx, flags);
      if (positionals.length !== 1 || positionals[0] !== 'build' || values['blender-version'] === undefined)
        throw new UsageError('usage: skyfarm images [build --blender-version X] [--stack-name N] [--json]');
      const minutes = positiveInt(values.timeout, '--timeout');
      return imagesBuildCommand(ctx, {
        ...flags,
        blenderVersion: values['blender-version'],
        ...(minutes !== undefined ? { timeoutMinutes: minutes } : {}),
      });
    }
    case 'demo':
      return demoCommand(ctx, values.output);
    case 'addon': {
      const action = positionals[0];
      if (positionals.length !== 1 || (action !== 'install' && action !== 'status' && action !== 'uninstall'))
        throw new UsageError('usage: skyfarm addon install|status|uninstall [--blender PATH]… [--json]');
      return addonCommand(ctx, action, { blenders: values.blender ?? [], json });
    }
    default:
      throw new UsageError(`unknown command "${command}"; run \`skyfarm help\``);
  }
}

async function entry(): Promise<void> {
  const ctx: CliContext = {
    stateDir: stateDirFromEnv(process.env),
    env: process.env,
    cwd: process.cwd(),
    stdout: process.stdout,
    stderr: process.stderr,
  };
  const json = process.argv.includes('--json');
  let code: number;
  try {
    code = await main(process.argv.slice(2), ctx);
  } catch (error) {
    if (error instanceof SkyfarmError) {
      if (json)
        process.stdout.write(JSON.stringify({ error: { code: error.code, message: error.message } }) + '\n');
      else process.stderr.write(`skyfarm: ${error.message}\n`);
      code = exitCodeForError(error.code);
    } else if (
      error instanceof UsageError ||
      (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')
    ) {
      if (json)
        process.stdout.write(
          JSON.stringify({ error: { code: 'BAD_ARGUMENT', message: (error as Error).message } }) + '\n',
        );
      else process.stderr.write(`skyfarm: ${(error as Error).message}\n`);
      code = EXIT.input;
    } else {
      process.stderr.write(`skyfarm: unexpected error: ${(error as Error).stack ?? String(error)}\n`);
      code = EXIT.input;
    }
  }
  process.exitCode = code;
}

await entry();
