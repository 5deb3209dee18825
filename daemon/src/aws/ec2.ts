// Spot prices (DescribeSpotPriceHistory) and whether an instance is spot (DescribeInstances), behind a
// narrow interface over the real SDK v3 client (@aws-sdk/client-ec2).
import type { _InstanceType, EC2Client } from '@aws-sdk/client-ec2';
import type * as Ec2Sdk from '@aws-sdk/client-ec2';
import type { ClientSettings } from '../batch/bucket.js';
import { lazySdk } from './lazy-sdk.js';

const ec2Sdk = lazySdk<typeof Ec2Sdk>('@aws-sdk/client-ec2');

export interface SpotPricePoint {
  instanceType: string;
  availabilityZone: string;
  usdPerHour: number;
  /** When this price took effect (epoch ms). */
  since: number;
}

export interface Ec2Instance {
  instanceId: string;
  instanceType: string;
  availabilityZone: string;
  spot: boolean;
}

export interface IEc2 {
  /** Linux/UNIX spot prices of one type in one zone in effect during [start, end] (epoch ms). */
  spotPrices(
    instanceType: string,
    availabilityZone: string,
    start: number,
    end: number,
  ): Promise<SpotPricePoint[]>;
  /**
   * The Linux/UNIX spot price in effect at `at` of each of `instanceTypes` in every zone of the region
   * that has one (a type without spot capacity there has none).
   */
  spotPricesAt(instanceTypes: string[], at: number): Promise<SpotPricePoint[]>;
  /** At most 100 ids. */
  instances(instanceIds: string[]): Promise<Ec2Instance[]>;
}

const MAX_PAGES = 20;

export function createEc2(settings: ClientSettings): IEc2 & { destroy(): void } {
  let client: EC2Client | undefined;
  const ec2 = () =>
    (client ??= new ec2Sdk.EC2Client({
      region: settings.region,
      ...(settings.credentials ? { credentials: settings.credentials } : {}),
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    }));
  return {
    async spotPrices(instanceType, availabilityZone, start, end) {
      const points: SpotPricePoint[] = [];
      let token: string | undefined;
      for (let page = 0; page < MAX_PAGES; page++) {
        const out = await ec2().send(
          new ec2Sdk.DescribeSpotPriceHistoryCommand({
            // The SDK's list of instance types is closed; a newer type than it knows is still valid.
            InstanceTypes: [instanceType as _InstanceType],
            AvailabilityZone: availabilityZone,
            ProductDescriptions: ['Linux/UNIX'],
            StartTime: new Date(start),
            EndTime: new Date(end),
            MaxResults: 1000,
            ...(token ? { NextToken: token } : {}),
          }),
        );
        for (const item of out.SpotPriceHistory ?? []) {
          const usd = Number(item.SpotPrice);
          if (item.InstanceType && item.AvailabilityZone && item.Timestamp && usd > 0)
            points.push({
              instanceType: item.InstanceType,
              availabilityZone: item.AvailabilityZone,
              usdPerHour: usd,
              since: item.Timestamp.getTime(),
            });
        }
        token = out.NextToken || undefined;
        if (!token) break;
      }
      return points.sort((a, b) => a.since - b.since);
    },
    async spotPricesAt(instanceTypes, at) {
      const newest = new Map<string, SpotPricePoint>();
      let token: string | undefined;
      for (let page = 0; page < MAX_PAGES && instanceTypes.length; page++) {
        // StartTime = EndTime: EC2 answers with the price in effect then, per type and zone.
        const out = await ec2().send(
          new ec2Sdk.DescribeSpotPriceHistoryCommand({
            InstanceTypes: instanceTypes as _InstanceType[],
            ProductDescriptions: ['Linux/UNIX'],
            StartTime: new Date(at),
            EndTime: new Date(at),
            MaxResults: 1000,
            ...(token ? { NextToken: token } : {}),
          }),
        );
        for (const item of out.SpotPriceHistory ?? []) {
          const usd = Number(item.SpotPrice);
          if (!item.InstanceType || !item.AvailabilityZone || !item.Timestamp || !(usd > 0)) continue;
          const since = item.Timestamp.getTime();
          const key = `${item.InstanceType}/${item.AvailabilityZone}`;
          if (since <= at && since >= (newest.get(key)?.since ?? -Infinity))
            newest.set(key, {
              instanceType: item.InstanceType,
              availabilityZone: item.AvailabilityZone,
              usdPerHour: usd,
              since,
            });
        }
        token = out.NextToken || undefined;
        if (!token) break;
      }
      return [...newest.values()];
    },
    async instances(instanceIds) {
      if (instanceIds.length === 0) return [];
      const out = await ec2().send(new ec2Sdk.DescribeInstancesCommand({ InstanceIds: instanceIds }));
      return (out.Reservations ?? []).flatMap((r) =>
        (r.Instances ?? []).flatMap((i) =>
          i.InstanceId && i.InstanceType && i.Placement?.AvailabilityZone
            ? [
                {
                  instanceId: i.InstanceId,
                  instanceType: i.InstanceType,
                  availabilityZone: i.Placement.AvailabilityZone,
                  spot: i.InstanceLifecycle === 'spot',
                },
              ]
            : [],
        ),
      );
    },
    destroy: () => client?.destroy(),
  };
}
