// Reads a Batch container's CloudWatch log stream (the awslogs driver's), for `skyfarm logs --chunk`.
import type * as LogsSdk from '@aws-sdk/client-cloudwatch-logs';
import type { ClientSettings } from './bucket.js';
import { lazySdk } from '../aws/lazy-sdk.js';

const logsSdk = lazySdk<typeof LogsSdk>('@aws-sdk/client-cloudwatch-logs');

export interface ILogReader {
  /** The stream's lines from the start, at most `limit` (the newest when there are more). */
  read(group: string, stream: string, limit: number): Promise<string[]>;
}

const MAX_PAGES = 200;

export function createLogReader(settings: ClientSettings): ILogReader & { destroy(): void } {
  const client = new logsSdk.CloudWatchLogsClient({
    region: settings.region,
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
  });
  return {
    async read(group, stream, limit) {
      const lines: string[] = [];
      let token: string | undefined;
      for (let page = 0; page < MAX_PAGES; page++) {
        const out = await client.send(
          new logsSdk.GetLogEventsCommand({
            logGroupName: group,
            logStreamName: stream,
            startFromHead: true,
            ...(token ? { nextToken: token } : {}),
          }),
        );
        for (const event of out.events ?? []) lines.push(event.message ?? '');
        if (lines.length > limit) lines.splice(0, lines.length - limit);
        // The forward token repeats once the end of the stream is reached.
        if (!out.nextForwardToken || out.nextForwardToken === token || (out.events ?? []).length === 0) break;
        token = out.nextForwardToken;
      }
      return lines;
    },
    destroy: () => client.destroy(),
  };
}
