// Prices for the queue-price tests: two sizes of each family the stack template's CPU compute
// environments name (unequal prices per vCPU), the GPU families of its default GpuInstanceTypes, spot
// prices per size and zone, and the figures recomputed from these tables (not from daemon code).
import type { FakeInstanceProduct } from '../fakes/pricing/server.js';
import type { FakeSpotPrice } from '../fakes/ec2/server.js';

const HOUR = 3_600_000;
const now = Date.now();

// Two sizes of each family the template's CPU environments name, with unequal prices per vCPU, and
// the GPU families of its default GpuInstanceTypes.
export const cpuFamilies = ['c6i', 'c6a', 'c7i', 'm6i', 'm6a', 'm7i'];
export const products: FakeInstanceProduct[] = [
  ...cpuFamilies.flatMap((family, i) => [
    { instanceType: `${family}.large`, vcpu: 2, usdPerHour: 0.08 + i * 0.011 },
    { instanceType: `${family}.4xlarge`, vcpu: 16, usdPerHour: 0.6 + i * 0.07 },
  ]),
  { instanceType: 'g4dn.xlarge', vcpu: 4, gpu: 1, usdPerHour: 0.526 },
  { instanceType: 'g4dn.12xlarge', vcpu: 48, gpu: 4, usdPerHour: 3.912 },
  { instanceType: 'g5.xlarge', vcpu: 4, gpu: 1, usdPerHour: 1.006 },
  { instanceType: 'g6.2xlarge', vcpu: 8, gpu: 1, usdPerHour: 0.9776 },
].map((p) => ({ ...p, regionCode: 'us-east-1', memoryGiB: p.vcpu * 4 }));

// Spot prices per size and zone; the one in effect now is the newest. m7i.4xlarge has none (no spot
// capacity of it here), and c7i.large's price rose an hour ago.
export const spotPrices: FakeSpotPrice[] = products
  .filter((p) => !p.gpu && p.instanceType !== 'm7i.4xlarge')
  .flatMap((p, i) =>
    ['us-east-1a', 'us-east-1b'].map((zone, z) => ({
      instanceType: p.instanceType,
      availabilityZone: zone,
      since: now - 3 * HOUR,
      usdPerHour: p.usdPerHour * (0.3 + 0.01 * ((i * 7 + z * 3) % 11)),
    })),
  );
spotPrices.push({
  instanceType: 'c7i.large',
  availabilityZone: 'us-east-1b',
  since: now - HOUR,
  usdPerHour: 0.2,
});
spotPrices.push({
  instanceType: 'c7i.large',
  availabilityZone: 'us-east-1a',
  since: now + HOUR,
  usdPerHour: 9,
});

/** The highest on-demand price per vCPU among these families' sizes (from the table above). */
export function onDemandPerVcpu(families: string[]): number {
  return Math.max(
    ...products
      .filter((p) => families.some((f) => p.instanceType.startsWith(`${f}.`)))
      .map((p) => p.usdPerHour / p.vcpu),
  );
}

/** The highest spot price per vCPU in effect now (any zone) among these families' sizes. */
export function spotPerVcpu(families: string[]): number {
  let best = 0;
  for (const product of products.filter((p) => families.some((f) => p.instanceType.startsWith(`${f}.`)))) {
    for (const zone of ['us-east-1a', 'us-east-1b']) {
      const current = spotPrices
        .filter(
          (s) => s.instanceType === product.instanceType && s.availabilityZone === zone && s.since <= now,
        )
        .sort((a, b) => b.since - a.since)[0];
      if (current) best = Math.max(best, current.usdPerHour / product.vcpu);
    }
  }
  return best;
}
