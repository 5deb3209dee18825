// A render for a Blender version other than the stack's default runs in that version's worker image.
// AWS Batch cannot override a job's image at submit time, so the render job definition is derived once
// per version: the stack's definition with the image tag replaced (`<name>-blender-4-1-1`), tagged with
// the definition it was derived from so a changed stack gets a fresh revision. Copy and publish keep
// the stack's definitions (the default image), as does the stack's publish-after-failure rule.
import type { JobDefinition } from '@aws-sdk/client-batch';
import type * as BatchSdk from '@aws-sdk/client-batch';
import { lazySdk } from '../aws/lazy-sdk.js';
import { mapAwsError } from '../aws/errors.js';
import type { ClientSettings } from '../batch/bucket.js';
import { SkyfarmError } from '../errors.js';

const batchSdk = lazySdk<typeof BatchSdk>('@aws-sdk/client-batch');

export interface JobDefinitionInfo {
  arn: string;
  name: string;
  revision: number;
  image?: string;
  tags: Record<string, string>;
  /** The whole definition as Batch describes it (what a derived one copies). */
  source: JobDefinition;
}

export interface IJobDefinitions {
  /** An ACTIVE definition by ARN, `name:revision` or name (its newest ACTIVE revision). */
  find(ref: string): Promise<JobDefinitionInfo | undefined>;
  /** Registers a copy of `from` under `name` with another image and tags; returns the new ARN. */
  registerCopy(
    from: JobDefinition,
    name: string,
    image: string,
    tags: Record<string, string>,
  ): Promise<string>;
}

function toInfo(d: JobDefinition): JobDefinitionInfo {
  return {
    arn: d.jobDefinitionArn ?? '',
    name: d.jobDefinitionName ?? '',
    revision: d.revision ?? 0,
    ...(d.containerProperties?.image ? { image: d.containerProperties.image } : {}),
    tags: d.tags ?? {},
    source: d,
  };
}

const MAX_PAGES = 20;

export function createJobDefinitions(settings: ClientSettings): IJobDefinitions & { destroy(): void } {
  const client = new batchSdk.BatchClient({
    region: settings.region,
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
  });
  return {
    async find(ref) {
      const byName = !ref.includes(':');
      const found: JobDefinition[] = [];
      let nextToken: string | undefined;
      for (let page = 0; page < MAX_PAGES; page++) {
        const out = await client.send(
          new batchSdk.DescribeJobDefinitionsCommand({
            ...(byName ? { jobDefinitionName: ref } : { jobDefinitions: [ref] }),
            status: 'ACTIVE',
            ...(nextToken ? { nextToken } : {}),
          }),
        );
        found.push(...(out.jobDefinitions ?? []));
        nextToken = out.nextToken;
        if (!nextToken) break;
      }
      const newest = found
        .filter((d) => d.status === undefined || d.status === 'ACTIVE')
        .sort((a, b) => (b.revision ?? 0) - (a.revision ?? 0))[0];
      return newest ? toInfo(newest) : undefined;
    },
    async registerCopy(from, name, image, tags) {
      if (!from.containerProperties)
        throw new Error(`${from.jobDefinitionName} is not a container job definition`);
      const out = await client.send(
        new batchSdk.RegisterJobDefinitionCommand({
          jobDefinitionName: name,
          type: (from.type ?? 'container') as 'container',
          ...(from.parameters ? { parameters: from.parameters } : {}),
          ...(from.retryStrategy ? { retryStrategy: from.retryStrategy } : {}),
          ...(from.timeout ? { timeout: from.timeout } : {}),
          ...(from.propagateTags !== undefined ? { propagateTags: from.propagateTags } : {}),
          ...(from.platformCapabilities ? { platformCapabilities: from.platformCapabilities } : {}),
          containerProperties: { ...from.containerProperties, image },
          tags,
        }),
      );
      if (!out.jobDefinitionArn) throw new Error(`RegisterJobDefinition ${name} returned no ARN`);
      return out.jobDefinitionArn;
    },
    destroy: () => client.destroy(),
  };
}

/** `repo:4.2.3` → `repo:4.1.1` (the tag after the last colon of the last path segment). */
export function imageForVersion(image: string, version: string): string {
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  return `${colon > slash ? image.slice(0, colon) : image}:${version}`;
}

export const BASE_TAG = 'skyfarm:derived-from';
export const VERSION_TAG = 'skyfarm:blender-version';

/**
 * The render job definition for `version`, derived from `baseRef` (the stack's render definition):
 * an existing derived revision when it has the image and was derived from this very base, else a new one.
 */
export async function renderDefinitionFor(
  defs: IJobDefinitions,
  baseRef: string,
  version: string,
): Promise<string> {
  let base: JobDefinitionInfo | undefined;
  try {
    base = await defs.find(baseRef);
  } catch (error) {
    throw mapAwsError(error, { action: 'batch:DescribeJobDefinitions', resource: baseRef });
  }
  if (!base?.image) {
    throw new SkyfarmError(
      'BACKEND_UNAVAILABLE',
      `the farm's render job definition ${baseRef} was not found (or has no image); redeploy with \`skyfarm deploy\``,
    );
  }
  const image = imageForVersion(base.image, version);
  if (image === base.image) return base.arn;
  const name = `${base.name}-blender-${version.replace(/\./g, '-')}`.slice(0, 128);
  try {
    const existing = await defs.find(name);
    if (existing && existing.image === image && existing.tags[BASE_TAG] === base.arn) return existing.arn;
    return await defs.registerCopy(base.source, name, image, {
      [BASE_TAG]: base.arn,
      [VERSION_TAG]: version,
    });
  } catch (error) {
    throw mapAwsError(error, { action: 'batch:RegisterJobDefinition', resource: name });
  }
}
