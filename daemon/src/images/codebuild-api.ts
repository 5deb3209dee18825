// The narrow CodeBuild interface `skyfarm images build` needs, over the real SDK v3 client (loaded on
// first use). Everything the image service knows about a build comes through `BuildInfo`.
import type { Build } from '@aws-sdk/client-codebuild';
import type * as CodeBuildSdk from '@aws-sdk/client-codebuild';
import { lazySdk } from '../aws/lazy-sdk.js';
import type { ClientSettings } from '../batch/bucket.js';

const codeBuildSdk = lazySdk<typeof CodeBuildSdk>('@aws-sdk/client-codebuild');

export interface BuildPhase {
  /** SUBMITTED, QUEUED, PROVISIONING, DOWNLOAD_SOURCE, INSTALL, PRE_BUILD, BUILD, POST_BUILD, … */
  type: string;
  /** SUCCEEDED, FAILED, FAULT, TIMED_OUT, IN_PROGRESS, STOPPED, CLIENT_ERROR; absent while it runs. */
  status?: string;
  /** Why a phase failed (CodeBuild's `contexts`). */
  contexts: Array<{ statusCode?: string; message?: string }>;
}

export interface BuildInfo {
  id: string;
  /** IN_PROGRESS, SUCCEEDED, FAILED, FAULT, TIMED_OUT, STOPPED. */
  status: string;
  currentPhase: string;
  complete: boolean;
  phases: BuildPhase[];
  logs?: { group?: string; stream?: string; link?: string };
  startTime?: Date;
  endTime?: Date;
}

export interface StartBuildRequest {
  project: string;
  /** Overrides of the project's environment variables (plain text). */
  environment: Record<string, string>;
  /** `bucket/key` of a zip with the build's source, instead of the project's configured location. */
  sourceLocation?: string;
}

export interface ICodeBuild {
  startBuild(request: StartBuildRequest): Promise<BuildInfo>;
  /** Undefined when CodeBuild does not know the id. */
  getBuild(id: string): Promise<BuildInfo | undefined>;
}

function toInfo(build: Build): BuildInfo {
  const logs = build.logs;
  return {
    id: build.id ?? '',
    status: build.buildStatus ?? 'IN_PROGRESS',
    currentPhase: build.currentPhase ?? 'SUBMITTED',
    complete: build.buildComplete ?? false,
    phases: (build.phases ?? []).map((p) => ({
      type: p.phaseType ?? 'UNKNOWN',
      ...(p.phaseStatus ? { status: p.phaseStatus } : {}),
      contexts: (p.contexts ?? []).map((c) => ({
        ...(c.statusCode ? { statusCode: c.statusCode } : {}),
        ...(c.message ? { message: c.message } : {}),
      })),
    })),
    ...(logs && (logs.groupName || logs.streamName || logs.deepLink)
      ? {
          logs: {
            ...(logs.groupName ? { group: logs.groupName } : {}),
            ...(logs.streamName ? { stream: logs.streamName } : {}),
            ...(logs.deepLink ? { link: logs.deepLink } : {}),
          },
        }
      : {}),
    ...(build.startTime ? { startTime: build.startTime } : {}),
    ...(build.endTime ? { endTime: build.endTime } : {}),
  };
}

export function createCodeBuild(settings: ClientSettings): ICodeBuild & { destroy(): void } {
  const client = new codeBuildSdk.CodeBuildClient({
    region: settings.region,
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
  });
  return {
    async startBuild(request) {
      const out = await client.send(
        new codeBuildSdk.StartBuildCommand({
          projectName: request.project,
          environmentVariablesOverride: Object.entries(request.environment).map(([name, value]) => ({
            name,
            value,
            type: 'PLAINTEXT',
          })),
          ...(request.sourceLocation
            ? { sourceTypeOverride: 'S3', sourceLocationOverride: request.sourceLocation }
            : {}),
        }),
      );
      if (!out.build?.id) throw new Error(`StartBuild ${request.project} returned no build`);
      return toInfo(out.build);
    },
    async getBuild(id) {
      const out = await client.send(new codeBuildSdk.BatchGetBuildsCommand({ ids: [id] }));
      const build = (out.builds ?? []).find((b) => b.id === id);
      return build ? toInfo(build) : undefined;
    },
    destroy: () => client.destroy(),
  };
}
