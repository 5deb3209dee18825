// The fakes of the AWS APIs cost is computed from answer as the API references say, through the
// daemon's real SDK clients and their wire formats (JSON 1.1 for the Price List and ECS, the Query
// protocol with XML for EC2): on-demand prices taken from the OnDemand term of the Linux/shared
// product across pages, spot prices in effect over a period (including the one that began before
// it), spot vs on-demand instances, container instances' types and zones, and the denials an
// identity without the action gets, which the daemon turns into AWS_ACCESS_DENIED naming the
// missing action.
import t from 'tap';
import { startFakePricing } from './fakes/pricing/server.js';
import { startFakeEc2 } from './fakes/ec2/server.js';
import { startFakeEcs, containerInstanceArn } from './fakes/ecs/server.js';
import { awsEnv } from './fakes/batch/aws-env.js';
import { settingsFromEnv } from '../daemon/src/batch/bucket.js';
import { createPricing } from '../daemon/src/aws/pricing.js';
import { createEc2 } from '../daemon/src/aws/ec2.js';
import { createContainerInstances } from '../daemon/src/aws/ecs.js';
import { mapAwsError } from '../daemon/src/aws/errors.js';

/** The daemon's client settings for one fake (dummy keys, its endpoint as AWS_ENDPOINT_URL_<SERVICE>). */
function settings(service: 'PRICING' | 'EC2' | 'ECS', endpoint: string) {
  const key = service.toLowerCase() as 'pricing' | 'ec2' | 'ecs';
  return settingsFromEnv(awsEnv({ s3: 'http://127.0.0.1:9', [key]: endpoint }), service);
}

t.test('Price List: the on-demand Linux price of a type in a region, across pages', async (t) => {
  const pricing = await startFakePricing({
    products: [
      { instanceType: 'c6i.xlarge', regionCode: 'us-east-1', vcpu: 4, memoryGiB: 8, usdPerHour: 0.17 },
      { instanceType: 'c6i.xlarge', regionCode: 'eu-central-1', vcpu: 4, memoryGiB: 8, usdPerHour: 0.194 },
      {
        instanceType: 'g5.xlarge',
        regionCode: 'us-east-1',
        vcpu: 4,
        gpu: 1,
        memoryGiB: 16,
        usdPerHour: 1.006,
      },
    ],
    pageLimit: 1,
  });
  t.teardown(() => pricing.close());
  const client = createPricing(settings('PRICING', pricing.endpoint));
  t.teardown(() => client.destroy());
  t.same(await client.onDemand('us-east-1', 'c6i.xlarge'), {
    instanceType: 'c6i.xlarge',
    region: 'us-east-1',
    vcpu: 4,
    gpu: 0,
    usdPerHour: 0.17,
  });
  t.equal((await client.onDemand('eu-central-1', 'c6i.xlarge'))?.usdPerHour, 0.194, 'the region decides');
  const gpu = await client.onDemand('us-east-1', 'g5.xlarge');
  t.equal(gpu?.gpu, 1);
  t.equal(gpu?.usdPerHour, 1.006);
  t.equal(await client.onDemand('us-east-1', 'x9.huge'), undefined, 'no product, no price');
  const call = pricing.calls.at(-1)!;
  t.equal(call.operation, 'GetProducts');
  t.equal(call.input['ServiceCode'], 'AmazonEC2');

  // Without filters the list holds Windows and dedicated products too, on several pages.
  const raw = await fetch(pricing.endpoint, {
    method: 'POST',
    headers: {
      'x-amz-target': 'AWSPriceListService.GetProducts',
      'content-type': 'application/x-amz-json-1.1',
      authorization: 'AWS4-HMAC-SHA256 Credential=x',
    },
    body: JSON.stringify({ ServiceCode: 'AmazonEC2', MaxResults: 100 }),
  });
  const page = (await raw.json()) as { PriceList: string[]; NextToken?: string };
  t.equal(page.NextToken, '1', 'pageLimit makes a next page');
  t.type(page.PriceList[0], 'string', 'PriceList entries are JSON documents in strings');

  pricing.deny(true);
  const denied = await client.onDemand('us-east-1', 'c6i.xlarge').catch((e: unknown) => e);
  t.equal((denied as Error).name, 'AccessDeniedException');
  const mapped = mapAwsError(denied, { action: 'pricing:GetProducts' });
  t.equal(mapped.code, 'AWS_ACCESS_DENIED');
  t.match(mapped.message, /pricing:GetProducts/);
});

t.test('EC2: spot prices in effect over a period, and which instances are spot', async (t) => {
  const hour = 3_600_000;
  const t0 = Date.parse('2026-12-07T00:00:00Z');
  const ec2 = await startFakeEc2({
    spotPrices: [
      { instanceType: 'c6i.xlarge', availabilityZone: 'us-east-1a', since: t0 - 5 * hour, usdPerHour: 0.061 },
      { instanceType: 'c6i.xlarge', availabilityZone: 'us-east-1a', since: t0 - 2 * hour, usdPerHour: 0.064 },
      { instanceType: 'c6i.xlarge', availabilityZone: 'us-east-1a', since: t0 + hour, usdPerHour: 0.07 },
      { instanceType: 'c6i.xlarge', availabilityZone: 'us-east-1b', since: t0 - hour, usdPerHour: 0.09 },
      { instanceType: 'c6i.xlarge', availabilityZone: 'us-east-1a', since: t0 + 9 * hour, usdPerHour: 0.08 },
    ],
    instances: [
      { instanceId: 'i-0aaa', instanceType: 'c6i.xlarge', availabilityZone: 'us-east-1a', spot: true },
      { instanceId: 'i-0bbb', instanceType: 'm6i.large', availabilityZone: 'us-east-1b', spot: false },
    ],
    pageLimit: 1,
  });
  t.teardown(() => ec2.close());
  const client = createEc2(settings('EC2', ec2.endpoint));
  t.teardown(() => client.destroy());
  const points = await client.spotPrices('c6i.xlarge', 'us-east-1a', t0, t0 + 2 * hour);
  t.same(
    points.map((p) => [p.since - t0, p.usdPerHour]),
    [
      [-2 * hour, 0.064],
      [hour, 0.07],
    ],
    'the price in effect at the start (begun before it) and the one that began inside',
  );
  t.ok(ec2.calls.filter((c) => c.action === 'DescribeSpotPriceHistory').length >= 2, 'NextToken followed');
  t.same(await client.instances(['i-0aaa', 'i-0bbb']), [
    { instanceId: 'i-0aaa', instanceType: 'c6i.xlarge', availabilityZone: 'us-east-1a', spot: true },
    { instanceId: 'i-0bbb', instanceType: 'm6i.large', availabilityZone: 'us-east-1b', spot: false },
  ]);
  const missing = await client.instances(['i-0zzz']).catch((e: unknown) => e);
  t.equal((missing as Error).name, 'InvalidInstanceID.NotFound');

  ec2.deny(true);
  const denied = await client.spotPrices('c6i.xlarge', 'us-east-1a', t0, t0 + hour).catch((e: unknown) => e);
  t.equal((denied as Error).name, 'UnauthorizedOperation');
  t.equal((denied as { $metadata: { httpStatusCode: number } }).$metadata.httpStatusCode, 403);
  const mapped = mapAwsError(denied, { action: 'ec2:DescribeSpotPriceHistory' });
  t.equal(mapped.code, 'AWS_ACCESS_DENIED');
  t.match(mapped.message, /ec2:DescribeSpotPriceHistory/);
});

t.test('ECS: the instance type and zone of Batch container instances', async (t) => {
  const instance = {
    cluster: 'skyfarm-cpu-spot_Batch_0f1e',
    id: '5d2c0a7e9b1f4c3d8e6a',
    ec2InstanceId: 'i-0aaa',
    instanceType: 'c6i.xlarge',
    availabilityZone: 'us-east-1a',
    vcpu: 4,
    memoryMiB: 7680,
  };
  const ecs = await startFakeEcs({ instances: [instance] });
  t.teardown(() => ecs.close());
  const client = createContainerInstances(settings('ECS', ecs.endpoint));
  t.teardown(() => client.destroy());
  const arn = containerInstanceArn(instance);
  const ghost = containerInstanceArn({ cluster: instance.cluster, id: 'gone' });
  t.same(await client.describe(instance.cluster, [arn, ghost]), [
    { arn, ec2InstanceId: 'i-0aaa', instanceType: 'c6i.xlarge', availabilityZone: 'us-east-1a' },
  ]);
  const call = ecs.calls.at(-1)!;
  t.same(call.input['containerInstances'], [arn, ghost]);
  const noCluster = await client.describe('elsewhere', [arn]).catch((e: unknown) => e);
  t.equal((noCluster as Error).name, 'ClusterNotFoundException');
  ecs.deny(true);
  const denied = await client.describe(instance.cluster, [arn]).catch((e: unknown) => e);
  t.equal((denied as Error).name, 'AccessDeniedException');
  t.match(
    mapAwsError(denied, { action: 'ecs:DescribeContainerInstances' }).message,
    /ecs:DescribeContainerInstances/,
  );
});
