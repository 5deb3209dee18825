// Instance prices from AWS, cached in SQLite: on-demand offers (Price List) for a day, spot price
// history (EC2) for an hour. A price AWS does not give is a CostUnknown, never a stand-in.
import type { Db } from '../db/database.js';
import type { InstanceOffer, IPricing } from '../aws/pricing.js';
import type { IEc2, SpotPricePoint } from '../aws/ec2.js';
import type { StoragePrices } from '../aws/storage-prices.js';
import { CostUnknown, costUnknownFrom } from './unknown.js';

export const ON_DEMAND_TTL_MS = 24 * 3_600_000;
export const SPOT_TTL_MS = 3_600_000;
/** Spot history is fetched from at least this long before now, so one answer serves many jobs. */
const SPOT_LOOKBACK_MS = 24 * 3_600_000;

interface SpotEntry {
  from: number;
  points: SpotPricePoint[];
}

export class PriceBook {
  private readonly inflight = new Map<string, Promise<unknown>>();

  constructor(
    private readonly deps: {
      db: Db;
      pricing: () => IPricing;
      now?: () => number;
    },
  ) {}

  private now(): number {
    return this.deps.now?.() ?? Date.now();
  }

  private cached<T>(key: string, ttlMs: number): { value: T; fetchedAt: number } | undefined {
    const row = this.deps.db.prepare('SELECT value, fetched_at FROM price_cache WHERE key = ?').get(key) as
      { value: string; fetched_at: number } | undefined;
    if (!row || this.now() - row.fetched_at >= ttlMs) return undefined;
    return { value: JSON.parse(row.value) as T, fetchedAt: row.fetched_at };
  }

  private store(key: string, value: unknown): void {
    this.deps.db
      .prepare(
        `INSERT INTO price_cache (key, value, fetched_at) VALUES (?, ?, ?)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, fetched_at = excluded.fetched_at`,
      )
      .run(key, JSON.stringify(value), this.now());
  }

  /** One request per key at a time: jobs asking for the same price share the answer. */
  private once<T>(key: string, fetch: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(key) as Promise<T> | undefined;
    if (running) return running;
    const promise = fetch().finally(() => this.inflight.delete(key));
    this.inflight.set(key, promise);
    return promise;
  }

  /** The Linux on-demand offer of a type in a region (vCPUs, GPUs, USD/hour). */
  async onDemand(region: string, instanceType: string): Promise<InstanceOffer> {
    const key = `od/${region}/${instanceType}`;
    const hit = this.cached<InstanceOffer>(key, ON_DEMAND_TTL_MS);
    if (hit) return hit.value;
    return this.once(key, async () => {
      let offer: InstanceOffer | undefined;
      try {
        offer = await this.deps.pricing().onDemand(region, instanceType);
      } catch (error) {
        throw costUnknownFrom(error, 'pricing:GetProducts');
      }
      if (!offer)
        throw new CostUnknown(
          `the AWS Price List has no Linux on-demand price for ${instanceType} in ${region}`,
        );
      this.store(key, offer);
      return offer;
    });
  }

  /** The on-demand offers of a family's sizes in a region (the Price List's answer, cached a day). */
  async familyOffers(region: string, family: string): Promise<InstanceOffer[]> {
    const key = `odfamily/${region}/${family}`;
    const hit = this.cached<InstanceOffer[]>(key, ON_DEMAND_TTL_MS);
    if (hit) return hit.value;
    return this.once(key, async () => {
      let offers: InstanceOffer[];
      try {
        offers = await this.deps.pricing().familyOffers(region, family);
      } catch (error) {
        throw costUnknownFrom(error, 'pricing:GetProducts');
      }
      if (offers.length === 0)
        throw new CostUnknown(
          `the AWS Price List has no Linux on-demand price for the ${family} family in ${region}`,
        );
      this.store(key, offers);
      return offers;
    });
  }

  /** S3 Standard, EFS Standard and S3 request prices of a region (the Price List's, cached a day). */
  async storage(region: string): Promise<StoragePrices> {
    const key = `storage/${region}`;
    const hit = this.cached<StoragePrices>(key, ON_DEMAND_TTL_MS);
    if (hit) return hit.value;
    return this.once(key, async () => {
      let found: Partial<StoragePrices>;
      try {
        found = await this.deps.pricing().storagePrices(region);
      } catch (error) {
        throw costUnknownFrom(error, 'pricing:GetProducts');
      }
      const names: Record<Exclude<keyof StoragePrices, 'region'>, string> = {
        s3StandardGbMonth: 'S3 Standard storage',
        s3PutPerRequest: 'S3 PUT/COPY/POST/LIST requests (S3-API-Tier1)',
        s3GetPerRequest: 'S3 GET requests (S3-API-Tier2)',
        efsStandardGbMonth: 'EFS Standard storage',
      };
      const missing = Object.entries(names).filter(([k]) => found[k as keyof StoragePrices] === undefined);
      if (missing.length)
        throw new CostUnknown(
          `the AWS Price List has no price for ${missing.map(([, name]) => name).join(', ')} in ${region}`,
        );
      const prices = { ...found, region } as StoragePrices;
      this.store(key, prices);
      return prices;
    });
  }

  /** The spot prices in effect now of these types in every zone of the region (cached an hour). */
  async spotNow(ec2: IEc2, region: string, instanceTypes: string[]): Promise<SpotPricePoint[]> {
    const types = [...new Set(instanceTypes)].sort();
    const key = `spotnow/${region}/${types.join(',')}`;
    const hit = this.cached<SpotPricePoint[]>(key, SPOT_TTL_MS);
    if (hit) return hit.value;
    return this.once(key, async () => {
      let points: SpotPricePoint[];
      try {
        points = await ec2.spotPricesAt(types, this.now());
      } catch (error) {
        throw costUnknownFrom(error, 'ec2:DescribeSpotPriceHistory');
      }
      this.store(key, points);
      return points;
    });
  }

  /**
   * The spot prices of a type in a zone in effect during [start, end], oldest first: the first began
   * at or before `start`. Cached for an hour; within it, the newest price is taken to hold on.
   */
  async spot(
    ec2: IEc2,
    region: string,
    instanceType: string,
    zone: string,
    start: number,
    end: number,
  ): Promise<SpotPricePoint[]> {
    const key = `spot/${region}/${instanceType}/${zone}`;
    const hit = this.cached<SpotEntry>(key, SPOT_TTL_MS);
    if (hit && hit.value.from <= start)
      return this.covering(hit.value.points, start, end, instanceType, zone);
    const from = Math.min(start, this.now() - SPOT_LOOKBACK_MS);
    const points = await this.once(`${key}@${from}`, async () => {
      let answer: SpotPricePoint[];
      try {
        answer = await ec2.spotPrices(instanceType, zone, from, this.now());
      } catch (error) {
        throw costUnknownFrom(error, 'ec2:DescribeSpotPriceHistory');
      }
      this.store(key, { from, points: answer } satisfies SpotEntry);
      return answer;
    });
    return this.covering(points, start, end, instanceType, zone);
  }

  private covering(
    points: SpotPricePoint[],
    start: number,
    end: number,
    instanceType: string,
    zone: string,
  ): SpotPricePoint[] {
    const sorted = [...points].sort((a, b) => a.since - b.since);
    const first = sorted.findLastIndex((p) => p.since <= start);
    if (first < 0)
      throw new CostUnknown(`EC2 reports no spot price of ${instanceType} in ${zone} at that time`);
    return sorted.slice(first).filter((p) => p.since <= end);
  }
}

/** USD of one instance-hour-weighted span: the spot prices in effect over [start, end], time-weighted. */
export function spotCost(points: SpotPricePoint[], start: number, end: number): number {
  let usd = 0;
  for (let i = 0; i < points.length; i++) {
    const from = Math.max(start, points[i]!.since);
    const to = Math.min(end, points[i + 1]?.since ?? end);
    if (to > from) usd += ((to - from) / 3_600_000) * points[i]!.usdPerHour;
  }
  return usd;
}
