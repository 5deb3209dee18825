// A fake Amazon ECR endpoint (JSON 1.1, `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Op>`, as
// the real @aws-sdk/client-ecr speaks it): repositories of images with tags, DescribeImages and
// ListImages with filters and pagination, and `push` for what a docker push (the CodeBuild fake) does.
// Behaviour: see SPEC.md beside this file.
import { createHash } from 'node:crypto';
import { AwsJsonError, startJsonEndpoint } from '../json11.js';

export const ACCOUNT = '123456789012';

export interface FakeImage {
  digest: string;
  tags: string[];
  pushedAt: number;
  sizeBytes: number;
}

export interface FakeEcr {
  endpoint: string;
  calls: Array<{ operation: string; input: Record<string, unknown>; at: number }>;
  /** Creates the repository when missing. */
  createRepository(name: string): void;
  /** A docker push of `name:tag`: a new image takes the tag (the image that had it loses it). */
  push(name: string, tag: string, sizeBytes?: number): FakeImage;
  images(name: string): FakeImage[];
  close(): Promise<void>;
}

export async function startFakeEcr(
  options: { repositories?: Record<string, string[]>; pageLimit?: number } = {},
): Promise<FakeEcr> {
  const repos = new Map<string, FakeImage[]>();
  let pushes = 0;
  const repo = (name: unknown): FakeImage[] => {
    const found = repos.get(String(name));
    if (!found) {
      throw new AwsJsonError(
        'RepositoryNotFoundException',
        `The repository with name '${String(name)}' does not exist in the registry with id '${ACCOUNT}'`,
      );
    }
    return found;
  };
  const createRepository = (name: string) => void (repos.has(name) || repos.set(name, []));
  const push = (name: string, tag: string, sizeBytes = 1_500_000_000 + pushes * 1000): FakeImage => {
    createRepository(name);
    const images = repos.get(name)!;
    for (const image of images) image.tags = image.tags.filter((t) => t !== tag);
    const image: FakeImage = {
      digest: `sha256:${createHash('sha256').update(`${name}:${tag}:${pushes++}`).digest('hex')}`,
      tags: [tag],
      pushedAt: Date.now(),
      sizeBytes,
    };
    images.push(image);
    return image;
  };
  for (const [name, tags] of Object.entries(options.repositories ?? {})) {
    createRepository(name);
    for (const tag of tags) push(name, tag);
  }

  /** Tokens are `<offset>`; a page holds min(maxResults, pageLimit) entries. */
  const page = <T>(
    items: T[],
    input: Record<string, unknown>,
    max: number,
  ): { items: T[]; next?: string } => {
    const requested = input['maxResults'] === undefined ? 100 : Number(input['maxResults']);
    if (!Number.isInteger(requested) || requested < 1 || requested > max)
      throw new AwsJsonError('InvalidParameterException', `maxResults must be between 1 and ${max}`);
    const size = Math.min(requested, options.pageLimit ?? Infinity);
    const start = input['nextToken'] === undefined ? 0 : Number(input['nextToken']);
    if (!Number.isInteger(start) || start < 0 || start > items.length)
      throw new AwsJsonError('InvalidParameterException', 'Invalid parameter at nextToken');
    const slice = items.slice(start, start + size);
    return start + size < items.length ? { items: slice, next: String(start + size) } : { items: slice };
  };
  const byStatus = (images: FakeImage[], input: Record<string, unknown>) => {
    const status = (input['filter'] as { tagStatus?: string } | undefined)?.tagStatus ?? 'ANY';
    if (!['TAGGED', 'UNTAGGED', 'ANY'].includes(status))
      throw new AwsJsonError('InvalidParameterException', `Invalid tagStatus ${status}`);
    return images.filter(
      (i) => status === 'ANY' || (status === 'TAGGED' ? i.tags.length > 0 : i.tags.length === 0),
    );
  };

  const server = await startJsonEndpoint('AmazonEC2ContainerRegistry_V20150921', {
    DescribeImages: (input) => {
      const name = String(input['repositoryName'] ?? '');
      let images = byStatus(repo(name), input);
      const ids = input['imageIds'] as Array<{ imageTag?: string; imageDigest?: string }> | undefined;
      if (ids) {
        images = images.filter((i) =>
          ids.some((id) => id.imageDigest === i.digest || (id.imageTag && i.tags.includes(id.imageTag))),
        );
        if (images.length === 0)
          throw new AwsJsonError('ImageNotFoundException', `The image requested does not exist in '${name}'`);
      }
      const { items, next } = page(images, input, 1000);
      return {
        imageDetails: items.map((i) => ({
          registryId: ACCOUNT,
          repositoryName: name,
          imageDigest: i.digest,
          imageTags: i.tags,
          imageSizeInBytes: i.sizeBytes,
          imagePushedAt: i.pushedAt / 1000,
          imageManifestMediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        })),
        ...(next ? { nextToken: next } : {}),
      };
    },
    ListImages: (input) => {
      const ids = byStatus(repo(input['repositoryName']), input).flatMap((i) =>
        i.tags.length
          ? i.tags.map((tag) => ({ imageDigest: i.digest, imageTag: tag }))
          : [{ imageDigest: i.digest }],
      );
      const { items, next } = page(ids, input, 1000);
      return { imageIds: items, ...(next ? { nextToken: next } : {}) };
    },
  });
  return {
    endpoint: server.endpoint,
    calls: server.calls,
    createRepository,
    push,
    images: (name) => (repos.get(name) ?? []).map((i) => ({ ...i, tags: [...i.tags] })),
    close: () => server.close(),
  };
}
