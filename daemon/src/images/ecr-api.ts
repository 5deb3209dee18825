// The narrow ECR interface `skyfarm images` and the render check need, over the real SDK v3 client
// (loaded on first use): the tagged images of one repository, every page.
import type * as EcrSdk from '@aws-sdk/client-ecr';
import { lazySdk } from '../aws/lazy-sdk.js';
import type { ClientSettings } from '../batch/bucket.js';

const ecrSdk = lazySdk<typeof EcrSdk>('@aws-sdk/client-ecr');

export interface ImageDetail {
  digest: string;
  tags: string[];
  pushedAt?: Date;
  sizeBytes?: number;
}

export interface IEcr {
  /** Every tagged image of the repository (all pages). Throws RepositoryNotFoundException as the SDK does. */
  listImages(repository: string): Promise<ImageDetail[]>;
}

/** Pages read at most (1,000 images each): ECR's lifecycle policy keeps far fewer. */
const MAX_PAGES = 50;

export function createEcr(settings: ClientSettings): IEcr & { destroy(): void } {
  const client = new ecrSdk.ECRClient({
    region: settings.region,
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
  });
  return {
    async listImages(repository) {
      const images: ImageDetail[] = [];
      let nextToken: string | undefined;
      for (let page = 0; page < MAX_PAGES; page++) {
        const out = await client.send(
          new ecrSdk.DescribeImagesCommand({
            repositoryName: repository,
            filter: { tagStatus: 'TAGGED' },
            maxResults: 1000,
            ...(nextToken ? { nextToken } : {}),
          }),
        );
        for (const image of out.imageDetails ?? []) {
          images.push({
            digest: image.imageDigest ?? '',
            tags: image.imageTags ?? [],
            ...(image.imagePushedAt ? { pushedAt: image.imagePushedAt } : {}),
            ...(image.imageSizeInBytes !== undefined ? { sizeBytes: image.imageSizeInBytes } : {}),
          });
        }
        nextToken = out.nextToken;
        if (!nextToken) break;
      }
      return images;
    },
    destroy: () => client.destroy(),
  };
}
