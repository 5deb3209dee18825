// A fake AWS CodeBuild endpoint (JSON 1.1, `X-Amz-Target: CodeBuild_20161006.<Op>`, as the real
// @aws-sdk/client-codebuild speaks it): StartBuild and BatchGetBuilds for the projects it is given. A
// build walks CodeBuild's phase sequence one phase per tick; DOWNLOAD_SOURCE fails when the source
// object is missing, a configured failure fails its phase, and a successful POST_BUILD pushes
// `$REPOSITORY_URI:$BLENDER_VERSION` into the fake ECR (what the template's buildspec does).
// Behaviour: see SPEC.md beside this file.
import { randomUUID } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { AwsJsonError, startJsonEndpoint } from '../json11.js';
import type { FakeEcr } from '../ecr/server.js';

export const REGION = 'us-east-1';
export const ACCOUNT = '123456789012';

export const PHASES = [
  'SUBMITTED',
  'QUEUED',
  'PROVISIONING',
  'DOWNLOAD_SOURCE',
  'INSTALL',
  'PRE_BUILD',
  'BUILD',
  'POST_BUILD',
  'UPLOAD_ARTIFACTS',
  'FINALIZING',
  'COMPLETED',
] as const;
export type Phase = (typeof PHASES)[number];

export interface FakeProject {
  name: string;
  /** The project's environment variables (StartBuild's overrides win). */
  environment: Record<string, string>;
  /** `bucket/key` of the source zip. */
  sourceLocation: string;
  logGroup?: string;
  /**
   * The project's buildspec (YAML). Its `docker build` and `docker push "<ref>"` commands are what the
   * fake "runs" at the end of their phase (variables substituted from the build's environment).
   * Without one: build in BUILD, push `$REPOSITORY_URI:$BLENDER_VERSION` in POST_BUILD.
   */
  buildspec?: string;
}

export interface PlannedFailure {
  phase: Phase;
  statusCode?: string;
  message: string;
}

interface PhaseRecord {
  phaseType: Phase;
  phaseStatus?: string;
  startTime: number;
  endTime?: number;
  durationInSeconds?: number;
  contexts?: Array<{ statusCode: string; message: string }>;
}

interface BuildRecord {
  id: string;
  arn: string;
  project: FakeProject;
  environment: Record<string, string>;
  sourceLocation: string;
  buildStatus: string;
  currentPhase: Phase;
  buildComplete: boolean;
  phases: PhaseRecord[];
  startTime: number;
  endTime?: number;
  logStream: string;
  failure?: PlannedFailure;
  checkingSource?: boolean;
}

export interface FakeCodeBuild {
  endpoint: string;
  calls: Array<{ operation: string; input: Record<string, unknown>; at: number }>;
  builds(): Array<{
    id: string;
    status: string;
    phase: Phase;
    environment: Record<string, string>;
    source: string;
  }>;
  close(): Promise<void>;
}

export interface FakeCodeBuildOptions {
  projects: FakeProject[];
  ecr?: FakeEcr;
  /** Milliseconds per phase (default 30). */
  stepMs?: number;
  /** Whether the source object exists (checked in DOWNLOAD_SOURCE); default: it does. */
  sourceExists?: (location: string) => Promise<boolean>;
  /** A failure to inject for a build with this BLENDER_VERSION. */
  failures?: Record<string, PlannedFailure>;
}

const VERSION = /^[0-9]+\.[0-9]+(\.[0-9]+)?$/;

const DEFAULT_COMMANDS: Partial<Record<Phase, string[]>> = {
  BUILD: [
    'docker build --build-arg "BLENDER_VERSION=$BLENDER_VERSION" -t "$REPOSITORY_URI:$BLENDER_VERSION" .',
  ],
  POST_BUILD: ['docker push "$REPOSITORY_URI:$BLENDER_VERSION"'],
};

/** The buildspec's commands of one phase (install, pre_build, build, post_build). */
function commandsOf(project: FakeProject, phase: Phase): string[] {
  if (!project.buildspec) return DEFAULT_COMMANDS[phase] ?? [];
  const spec = parseYaml(project.buildspec) as { phases?: Record<string, { commands?: string[] }> };
  return spec.phases?.[phase.toLowerCase()]?.commands ?? [];
}

/** `$NAME` / `${NAME}` from the build's environment (what the shell would do). */
function substitute(command: string, env: Record<string, string>): string {
  return command.replace(/\$\{?([A-Z_][A-Z0-9_]*)\}?/g, (_, name: string) => env[name] ?? '');
}

export async function startFakeCodeBuild(options: FakeCodeBuildOptions): Promise<FakeCodeBuild> {
  const builds = new Map<string, BuildRecord>();
  const stepMs = options.stepMs ?? 30;

  const view = (b: BuildRecord) => ({
    id: b.id,
    arn: b.arn,
    buildNumber: 1,
    projectName: b.project.name,
    buildStatus: b.buildStatus,
    currentPhase: b.currentPhase,
    buildComplete: b.buildComplete,
    startTime: b.startTime / 1000,
    ...(b.endTime ? { endTime: b.endTime / 1000 } : {}),
    phases: b.phases.map((p) => ({
      phaseType: p.phaseType,
      startTime: p.startTime / 1000,
      ...(p.phaseStatus ? { phaseStatus: p.phaseStatus } : {}),
      ...(p.endTime ? { endTime: p.endTime / 1000, durationInSeconds: p.durationInSeconds } : {}),
      ...(p.contexts ? { contexts: p.contexts } : {}),
    })),
    source: { type: 'S3', location: b.sourceLocation },
    environment: {
      type: 'LINUX_CONTAINER',
      image: 'aws/codebuild/amazonlinux2-x86_64-standard:5.0',
      computeType: 'BUILD_GENERAL1_MEDIUM',
      privilegedMode: true,
      environmentVariables: Object.entries(b.environment).map(([name, value]) => ({
        name,
        value,
        type: 'PLAINTEXT',
      })),
    },
    logs: {
      groupName: b.project.logGroup ?? `/aws/codebuild/${b.project.name}`,
      streamName: b.logStream,
      deepLink: `https://console.aws.amazon.com/cloudwatch/home?region=${REGION}#logEvent:group=${encodeURIComponent(b.project.logGroup ?? `/aws/codebuild/${b.project.name}`)};stream=${encodeURIComponent(b.logStream)}`,
    },
  });

  const enter = (b: BuildRecord, phase: Phase) => {
    b.currentPhase = phase;
    b.phases.push({ phaseType: phase, startTime: Date.now() });
    if (phase === 'COMPLETED') {
      b.buildComplete = true;
      b.endTime = Date.now();
      if (b.buildStatus === 'IN_PROGRESS') b.buildStatus = 'SUCCEEDED';
    }
  };
  const finish = (b: BuildRecord, status: string, context?: { statusCode: string; message: string }) => {
    const current = b.phases.at(-1)!;
    current.phaseStatus = status;
    current.endTime = Date.now();
    current.durationInSeconds = Math.round((current.endTime - current.startTime) / 1000);
    if (context) current.contexts = [context];
  };

  /** One tick: the current phase ends (succeeds or fails) and the next begins. */
  const step = async (b: BuildRecord) => {
    if (b.buildComplete || b.checkingSource) return;
    const phase = b.currentPhase;
    let failed: { statusCode: string; message: string } | undefined;
    if (phase === 'DOWNLOAD_SOURCE') {
      b.checkingSource = true;
      const exists = options.sourceExists ? await options.sourceExists(b.sourceLocation) : true;
      b.checkingSource = false;
      if (!exists) {
        failed = {
          statusCode: 'CLIENT_ERROR',
          message: `NoSuchKey: The specified key does not exist. for primary source and source version ${b.sourceLocation}`,
        };
      }
    }
    if (!failed && b.failure?.phase === phase) {
      failed = { statusCode: b.failure.statusCode ?? 'COMMAND_EXECUTION_ERROR', message: b.failure.message };
    }
    if (!failed) {
      for (const command of commandsOf(b.project, phase)) {
        const line = substitute(command, b.environment);
        if (/^docker build /.test(line) && !VERSION.test(b.environment['BLENDER_VERSION'] ?? '')) {
          failed = {
            statusCode: 'COMMAND_EXECUTION_ERROR',
            message: `Error while executing command: ${command}. Reason: exit status 1`,
          };
          break;
        }
        const push = /^docker push "?([^"\s]+)"?/.exec(line);
        if (push && options.ecr) {
          // <registry>/<repository>:<tag>
          const ref = push[1]!;
          const path = ref.slice(ref.indexOf('/') + 1);
          const colon = path.lastIndexOf(':');
          options.ecr.push(path.slice(0, colon), path.slice(colon + 1));
        }
      }
    }
    if (failed) {
      finish(b, phase === 'DOWNLOAD_SOURCE' ? 'CLIENT_ERROR' : 'FAILED', failed);
      b.buildStatus = 'FAILED';
      // The buildspec's `on-failure: ABORT`: the remaining command phases are skipped.
      enter(b, 'FINALIZING');
      return;
    }
    if (phase === 'COMPLETED') return;
    finish(b, 'SUCCEEDED');
    enter(b, PHASES[PHASES.indexOf(phase) + 1]!);
  };

  const timer = setInterval(() => {
    for (const b of builds.values()) void step(b);
  }, stepMs);

  const server = await startJsonEndpoint('CodeBuild_20161006', {
    StartBuild: (input) => {
      const name = String(input['projectName'] ?? '');
      const project = options.projects.find((p) => p.name === name);
      if (!project) {
        throw new AwsJsonError(
          'ResourceNotFoundException',
          `Project cannot be found: arn:aws:codebuild:${REGION}:${ACCOUNT}:project/${name}`,
        );
      }
      const environment = { ...project.environment };
      for (const v of (input['environmentVariablesOverride'] as Array<{ name: string; value: string }>) ?? [])
        environment[v.name] = v.value;
      const sourceType = input['sourceTypeOverride'];
      if (sourceType !== undefined && sourceType !== 'S3')
        throw new AwsJsonError(
          'InvalidInputException',
          `the fake only builds S3 sources, not ${String(sourceType)}`,
        );
      const uuid = randomUUID();
      const build: BuildRecord = {
        id: `${name}:${uuid}`,
        arn: `arn:aws:codebuild:${REGION}:${ACCOUNT}:build/${name}:${uuid}`,
        project,
        environment,
        sourceLocation: String(input['sourceLocationOverride'] ?? project.sourceLocation),
        buildStatus: 'IN_PROGRESS',
        currentPhase: 'SUBMITTED',
        buildComplete: false,
        phases: [{ phaseType: 'SUBMITTED', startTime: Date.now() }],
        startTime: Date.now(),
        logStream: `codebuild/${uuid}`,
        ...(options.failures?.[environment['BLENDER_VERSION'] ?? '']
          ? { failure: options.failures[environment['BLENDER_VERSION'] ?? '']! }
          : {}),
      };
      builds.set(build.id, build);
      return { build: view(build) };
    },
    BatchGetBuilds: (input) => {
      const ids = (input['ids'] as string[]) ?? [];
      if (ids.length < 1 || ids.length > 100)
        throw new AwsJsonError('InvalidInputException', 'ids must hold 1 to 100 build ids');
      const found = ids.filter((id) => builds.has(id));
      return {
        builds: found.map((id) => view(builds.get(id)!)),
        buildsNotFound: ids.filter((id) => !builds.has(id)),
      };
    },
  });
  return {
    endpoint: server.endpoint,
    calls: server.calls,
    builds: () =>
      [...builds.values()].map((b) => ({
        id: b.id,
        status: b.buildStatus,
        phase: b.currentPhase,
        environment: { ...b.environment },
        source: b.sourceLocation,
      })),
    close: async () => {
      clearInterval(timer);
      await server.close();
    },
  };
}
