// The farm's instances boot current, supported ECS AMIs: Amazon Linux 2023 for CPU environments and
// its NVIDIA variant for GPU ones (AWS ended support for the Amazon Linux 2 ECS AMIs; Batch's default
// for new ECS environments is AL2023 since January 2026). A stack deployed with the old AL2 GPU AMI
// is moved to AL2023 by `skyfarm deploy` (an update through a change set, same stack).
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { createStackService } from '../daemon/src/stack/index.js';
import { defaultTemplatePath, loadTemplate } from '../daemon/src/stack/template.js';
import { FAST_LIMITS, fakeAwsEnv, recorder, startFake } from './fakes/cloudformation/harness.js';

interface ComputeEnvironmentProps {
  ComputeEnvironmentName?: unknown;
  ComputeResources: {
    InstanceTypes: unknown;
    Ec2Configuration?: Array<{ ImageType: string }>;
    UpdateToLatestImageVersion?: boolean;
  };
}

const { template } = loadTemplate(defaultTemplatePath());
const environments = Object.entries(template.Resources).filter(
  ([, resource]) => resource.Type === 'AWS::Batch::ComputeEnvironment',
);

t.test('every compute environment boots an Amazon Linux 2023 ECS AMI', async (t) => {
  t.equal(environments.length, 4, 'CPU and GPU, spot and on-demand');
  for (const [id, resource] of environments) {
    const props = resource.Properties as unknown as ComputeEnvironmentProps;
    const gpu = resource.Condition === 'GpuEnabled';
    t.same(
      props.ComputeResources.Ec2Configuration?.map((c) => c.ImageType),
      [gpu ? 'ECS_AL2023_NVIDIA' : 'ECS_AL2023'],
      `${id}: ${gpu ? 'NVIDIA driver and container toolkit (OptiX/CUDA)' : 'plain AL2023'}`,
    );
    t.equal(
      props.ComputeResources.UpdateToLatestImageVersion,
      true,
      `${id}: AMI patches reach new instances`,
    );
    // A fixed name would block the replacement an AMI-type change needs.
    t.equal(props.ComputeEnvironmentName, undefined, `${id}: generated name, so it can be replaced`);
  }
});

t.test('the GPU instance families run on the AL2023 NVIDIA AMI', async (t) => {
  const parameter = template.Parameters?.GpuInstanceTypes as { Default?: string } | undefined;
  const families = String(parameter?.Default ?? '').split(',');
  t.ok(families.length > 0);
  for (const family of families) {
    // The AL2023 NVIDIA AMI's driver no longer supports the Kepler/Maxwell/Volta families (p2, g3, p3).
    t.notMatch(family.trim(), /^(p2|p3|g3|g3s)(\.|$)/, `${family}: supported by the AL2023 NVIDIA driver`);
  }
});

t.test('a stack deployed with the Amazon Linux 2 GPU AMI is updated in place', async (t) => {
  const dir = t.testdir();
  const current = readFileSync(defaultTemplatePath(), 'utf8');
  const oldTemplate = path.join(dir, 'skyfarm-al2.yaml');
  writeFileSync(oldTemplate, current.replaceAll('ImageType: ECS_AL2023_NVIDIA', 'ImageType: ECS_AL2_NVIDIA'));
  t.not(readFileSync(oldTemplate, 'utf8'), current, 'the old template differs');

  const fake = await startFake(t);
  const env = fakeAwsEnv(t, fake);
  const old = createStackService({ env, limits: FAST_LIMITS, templatePath: oldTemplate });
  await old.deploy({ gpu: true }, recorder().notify);
  const stackId = fake.stack('skyfarm')?.stackId;
  t.match(fake.stack('skyfarm')?.templateBody, /ECS_AL2_NVIDIA/, 'deployed with the AL2 GPU AMI');

  const rec = recorder();
  const updated = await createStackService({ env, limits: FAST_LIMITS }).deploy({}, rec.notify);
  t.equal(updated.changed, true);
  t.equal(updated.stack.status, 'UPDATE_COMPLETE');
  t.equal(fake.stack('skyfarm')?.stackId, stackId, 'the same stack');
  t.notMatch(fake.stack('skyfarm')?.templateBody, /ECS_AL2_NVIDIA/, 'no AL2 AMI left');
  const changed = new Set(
    rec.events
      .filter((e) => e.status === 'UPDATE_COMPLETE' && e.resource !== 'skyfarm')
      .map((e) => e.resource),
  );
  t.ok(
    changed.has('GpuSpotEnvironment') && changed.has('GpuOnDemandEnvironment'),
    'both GPU environments changed',
  );
  t.notOk(changed.has('CpuSpotEnvironment'), 'the CPU environments are untouched');
});
