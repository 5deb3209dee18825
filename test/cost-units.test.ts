// The arithmetic and the words of cost, without AWS: --max-cost input, the share of an instance a
// job pays for (GPUs when it reserved GPUs), spot prices time-weighted across changes, the projection
// and its range, and the "≈ … / cost unknown …" texts every surface shows.
import t from 'tap';
import { awsRenderOptions } from '../daemon/src/cli/aws-commands.js';
import { projection, shareOf, type Run } from '../daemon/src/cost/spend.js';
import { spotCost } from '../daemon/src/cost/price-book.js';
import { costLine, costSummary, formatUsd } from '../daemon/src/cost/format.js';
import { parsePriceListEntry } from '../daemon/src/aws/pricing.js';

t.test('--max-cost takes an amount in USD and refuses anything else', async (t) => {
  t.equal(awsRenderOptions({ 'max-cost': '12.50' })?.maxCostUsd, 12.5);
  t.equal(awsRenderOptions({ 'max-cost': '$5' })?.maxCostUsd, 5);
  for (const bad of ['0', '0.001', '-3', 'ten', '', '1e9']) {
    t.throws(
      () => awsRenderOptions({ 'max-cost': bad }),
      /--max-cost must be an amount in USD of at least 0\.01/,
      bad,
    );
  }
});

t.test('a job pays its share of the instance: its vCPUs, or its GPUs when it reserved GPUs', async (t) => {
  const run = (vcpus?: number, gpus?: number): Run => ({
    batchJobId: 'b',
    stage: 'render',
    start: 0,
    end: 1,
    running: false,
    ...(vcpus !== undefined ? { vcpus } : {}),
    ...(gpus !== undefined ? { gpus } : {}),
  });
  const g5 = { instanceType: 'g5.12xlarge', region: 'us-east-1', vcpu: 48, gpu: 4, usdPerHour: 5.672 };
  t.equal(shareOf(run(4), g5), 4 / 48);
  t.equal(shareOf(run(4, 1), g5), 1 / 4, 'a GPU job pays a quarter of a 4-GPU instance');
  t.equal(shareOf(run(96), g5), 1, 'never more than the whole instance');
  t.throws(() => shareOf(run(), g5), /did not report the vCPUs/, 'no vCPUs reported: unknown, not guessed');
});

t.test('spot prices in effect over a run, time-weighted', async (t) => {
  const hour = 3_600_000;
  const points = [
    { instanceType: 'c6i.xlarge', availabilityZone: 'a', since: 0, usdPerHour: 0.06 },
    { instanceType: 'c6i.xlarge', availabilityZone: 'a', since: 2 * hour, usdPerHour: 0.09 },
  ];
  t.equal(spotCost(points, hour, 3 * hour), 0.06 + 0.09, 'one hour at each price');
  t.equal(spotCost(points, hour, hour), 0);
});

t.test('projection: spent / progress, its range from finished chunks, the spend at the end', async (t) => {
  t.equal(projection(1, 0, 10, []), undefined, 'no progress, no projection');
  const p = projection(2, 0.25, 8, [
    { usd: 0.4, frames: 1 },
    { usd: 0.6, frames: 1 },
  ])!;
  t.equal(p.usd, 8);
  t.equal(p.lowUsd, Math.min(2 + 6 * 0.4, 8));
  t.equal(p.highUsd, 8, 'the range holds the projection');
  t.same(projection(3, 1, 8, [{ usd: 1, frames: 2 }]), { usd: 3, lowUsd: 3, highUsd: 3 });
});

t.test('the texts: an estimate with its basis, or unknown with the permission to allow', async (t) => {
  t.equal(formatUsd(0.421), '$0.42');
  t.equal(formatUsd(0.0042), '$0.0042');
  const running = {
    known: true,
    usd: 0.42,
    projectedUsd: 1.1,
    projectedLowUsd: 0.95,
    projectedHighUsd: 1.3,
    basis: 'c6i.xlarge spot ×3',
    maxCostUsd: 2,
    budget: 'within' as const,
  };
  t.equal(
    costLine(running, false),
    '≈ $0.42 so far · projected ≈ $1.10 ($0.95–$1.30) · budget $2.00 (c6i.xlarge spot ×3)',
  );
  t.equal(costSummary({ ...running, usd: 1.2 }, true), '≈ $1.20 · budget $2.00', 'finished: no projection');
  t.equal(
    costSummary(
      {
        known: false,
        unknownReason: 'AWS denied ec2:DescribeSpotPriceHistory',
        missingAction: 'ec2:DescribeSpotPriceHistory',
      },
      false,
    ),
    'cost unknown: AWS denied ec2:DescribeSpotPriceHistory (allow ec2:DescribeSpotPriceHistory for your AWS identity)',
  );
});

t.test('a Price List entry without an hourly on-demand USD price is no price', async (t) => {
  t.equal(parsePriceListEntry('not json'), undefined);
  const reservedOnly = JSON.stringify({
    product: { attributes: { instanceType: 'c6i.large', vcpu: '2', regionCode: 'us-east-1' } },
    terms: { Reserved: { x: { priceDimensions: { y: { unit: 'Hrs', pricePerUnit: { USD: '0.05' } } } } } },
  });
  t.equal(parsePriceListEntry(reservedOnly), undefined);
});
