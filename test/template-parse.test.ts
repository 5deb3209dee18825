// infra/skyfarm.yaml parses with CloudFormation's short-form tags, every reference resolves, and every
// output resolves to a value for each combination of the conditions.
import t from 'tap';
import { readFileSync } from 'node:fs';
import {
  TEMPLATE_BODY_LIMIT,
  defaultTemplatePath,
  loadTemplate,
  parseTemplate,
  type CfnTemplate,
} from '../daemon/src/stack/template.js';
import {
  checkTemplate,
  collectReferences,
  instantiate,
  resolveParameters,
} from './fakes/cloudformation/template-eval.js';

const path = defaultTemplatePath();
const body = readFileSync(path, 'utf8');
const { template } = loadTemplate(path);
const clone = (): CfnTemplate => JSON.parse(JSON.stringify(template)) as CfnTemplate;

t.test('short-form tags become the long JSON form', async (t) => {
  const doc = parseTemplate(
    [
      'Resources:',
      '  R:',
      '    Type: X',
      '    Properties:',
      '      a: !Ref P',
      '      b: !GetAtt Res.Attr.Sub',
      '      c: !Sub "${AWS::Region}-x"',
      '      d: !Sub ["${A}", { A: !Ref P }]',
      '      e: !If [C, !Select [1, !GetAZs ""], !Ref AWS::NoValue]',
      '      f: !Join [",", !Split ["|", "a|b"]]',
      '      g: !Not [!Equals [!Ref P, ""]]',
      '      h: !GetAtt [Res, Arn]',
      '      i: !And [!Condition C, !Or [!Condition D, !Condition C]]',
      '      j: !Base64 text',
    ].join('\n'),
  );
  t.same(doc.Resources.R?.Properties, {
    a: { Ref: 'P' },
    b: { 'Fn::GetAtt': ['Res', 'Attr.Sub'] },
    c: { 'Fn::Sub': '${AWS::Region}-x' },
    d: { 'Fn::Sub': ['${A}', { A: { Ref: 'P' } }] },
    e: { 'Fn::If': ['C', { 'Fn::Select': [1, { 'Fn::GetAZs': '' }] }, { Ref: 'AWS::NoValue' }] },
    f: { 'Fn::Join': [',', { 'Fn::Split': ['|', 'a|b'] }] },
    g: { 'Fn::Not': [{ 'Fn::Equals': [{ Ref: 'P' }, ''] }] },
    h: { 'Fn::GetAtt': ['Res', 'Arn'] },
    i: { 'Fn::And': [{ Condition: 'C' }, { 'Fn::Or': [{ Condition: 'D' }, { Condition: 'C' }] }] },
    j: { 'Fn::Base64': 'text' },
  });
  t.throws(() => parseTemplate('- a\n- b\n'), /not a YAML mapping/);
  t.throws(() => parseTemplate('Description: x\n'), /no Resources/);
});

t.test('the template uses the short forms and parses them all', async (t) => {
  for (const tag of ['!Ref', '!GetAtt', '!Sub', '!If', '!Equals', '!Not', '!Select', '!GetAZs', '!Join']) {
    t.match(body, new RegExp(`${tag}\\s`), `template uses ${tag}`);
  }
  const leftovers: string[] = [];
  const walk = (v: unknown) => {
    if (typeof v === 'string' && /^!(Ref|GetAtt|Sub|If|Equals|Not|Select|GetAZs|Join|Split)\b/.test(v))
      leftovers.push(v);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(template);
  t.same(leftovers, [], 'no tag survived as a plain string');
  t.same(template.Resources.SubnetA?.Properties?.AvailabilityZone, {
    'Fn::Select': [0, { 'Fn::GetAZs': '' }],
  });
  t.same(template.Resources.SubnetB?.Properties?.AvailabilityZone, {
    'Fn::Select': [1, { 'Fn::GetAZs': '' }],
  });
  t.ok(
    Buffer.byteLength(body) < TEMPLATE_BODY_LIMIT,
    `fits CreateStack's TemplateBody (${Buffer.byteLength(body)} bytes)`,
  );
});

t.test('every Ref, GetAtt, Sub, DependsOn and Condition target exists', async (t) => {
  const refs = collectReferences(template);
  t.ok(refs.filter((r) => r.kind === 'Ref').length > 40, 'references were found');
  t.ok(
    refs.some((r) => r.kind === 'Sub' && r.attribute === 'RepositoryUri'),
    'Sub with ${Resource.Attr} was seen',
  );
  t.same(checkTemplate(template), []);
});

t.test('the reference checker catches broken templates', async (t) => {
  const missing = clone();
  delete missing.Resources.LogGroup;
  t.match(checkTemplate(missing).join('\n'), /Sub LogGroup: no such parameter, resource or pseudo parameter/);

  const badAttr = clone();
  badAttr.Resources.JobRole!.Properties!.Path = { 'Fn::GetAtt': ['Bucket', 'NoSuchAttribute'] };
  t.match(checkTemplate(badAttr).join('\n'), /AWS::S3::Bucket has no attribute NoSuchAttribute/);

  const unguarded = clone();
  const outputs = unguarded.Outputs!;
  delete outputs.GpuSpotQueueArn!.Condition;
  t.match(checkTemplate(unguarded).join('\n'), /GpuSpotQueue exists only when GpuEnabled/);

  const badCondition = clone();
  badCondition.Resources.Vpc!.Condition = 'Nope';
  t.match(checkTemplate(badCondition).join('\n'), /Condition Nope: no such condition/);
});

t.test('parameters: names, defaults and constraints', async (t) => {
  t.same(Object.keys(template.Parameters ?? {}).sort(), [
    'DefaultBlenderVersion',
    'EnableGpu',
    'GpuInstanceTypes',
    'MaxVcpus',
    'NamePrefix',
    'NotifyEmail',
    'RetentionDays',
  ]);
  const defaults = resolveParameters(template, {});
  t.equal(defaults.EnableGpu, 'false');
  t.equal(defaults.NotifyEmail, '');
  t.same(defaults.GpuInstanceTypes, ['g4dn', 'g5', 'g6']);
  const rejects: Array<[string, string, RegExp]> = [
    ['MaxVcpus', '0', /not less than 1/],
    ['MaxVcpus', '10001', /not greater than 10000/],
    ['EnableGpu', 'yes', /AllowedValues/],
    ['NotifyEmail', 'not-an-address', /constraint/],
    ['NamePrefix', 'Bad_Name', /constraint/],
    ['NamePrefix', 'a--b', /constraint/],
    ['RetentionDays', '2', /AllowedValues/],
    ['DefaultBlenderVersion', 'latest', /constraint/],
  ];
  for (const [key, value, why] of rejects)
    t.throws(() => resolveParameters(template, { [key]: value }), why, `${key}=${value}`);
  t.doesNotThrow(() =>
    resolveParameters(template, {
      NotifyEmail: 'render@example.com',
      MaxVcpus: '10000',
      NamePrefix: 'farm-2',
    }),
  );
});

t.test('outputs resolve for every combination of GPU and mail', async (t) => {
  const required = [
    'SkyfarmStackVersion',
    'BucketName',
    'FileSystemId',
    'RepositoryUri',
    'LogGroupName',
    'WorkerImageBuildProject',
    'CpuSpotQueueArn',
    'CpuOnDemandQueueArn',
    'TransferQueueArn',
    'RenderJobDefinitionArn',
    'TransferJobDefinitionArn',
  ];
  for (const gpu of ['true', 'false']) {
    for (const email of ['', 'farm@example.com']) {
      const { outputs, resources } = instantiate(
        template,
        { EnableGpu: gpu, NotifyEmail: email },
        { stackName: 'skyfarm' },
      );
      for (const key of required)
        t.type(outputs[key], 'string', `${key} (gpu=${gpu}, email=${email || 'none'})`);
      t.equal('GpuSpotQueueArn' in outputs, gpu === 'true');
      t.equal('GpuOnDemandQueueArn' in outputs, gpu === 'true');
      t.equal(resources.has('GpuSpotEnvironment'), gpu === 'true');
      t.equal(resources.has('GpuOnDemandEnvironment'), gpu === 'true');
      t.equal(outputs.NotifyEmail, email || undefined);
      for (const [key, value] of Object.entries(outputs)) t.not(value, '', `${key} is not empty`);
    }
  }
  const { outputs, resources } = instantiate(
    template,
    { DefaultBlenderVersion: '4.2.3' },
    { stackName: 'farm' },
  );
  t.equal(
    outputs.SkyfarmStackVersion,
    String((template.Metadata?.Skyfarm as Record<string, unknown>).StackVersion),
  );
  t.equal(outputs.CpuSpotQueueArn, 'arn:aws:batch:eu-west-1:123456789012:job-queue/skyfarm-cpu-spot');
  t.equal(outputs.RepositoryUri, '123456789012.dkr.ecr.eu-west-1.amazonaws.com/skyfarm/worker');
  const render = resources.get('RenderJobDefinition')?.props as { ContainerProperties: { Image: string } };
  t.equal(
    render.ContainerProperties.Image,
    `${outputs.RepositoryUri}:4.2.3`,
    'image tag is the Blender version',
  );
  t.equal(outputs.LogGroupName, '/skyfarm/skyfarm');
});

t.test('Batch layout: queues, fallback order, job definitions', async (t) => {
  const { resources } = instantiate(template, { EnableGpu: 'true' });
  const arn = (id: string) => resources.get(id)?.physicalId;
  const order = (queue: string) =>
    (
      resources.get(queue)?.props as {
        ComputeEnvironmentOrder: Array<{ Order: number; ComputeEnvironment: string }>;
      }
    ).ComputeEnvironmentOrder.sort((a, b) => a.Order - b.Order).map((o) => o.ComputeEnvironment);
  t.same(
    order('CpuSpotQueue'),
    [arn('CpuSpotEnvironment'), arn('CpuOnDemandEnvironment')],
    'CPU spot falls back to on-demand',
  );
  t.same(order('CpuOnDemandQueue'), [arn('CpuOnDemandEnvironment')]);
  t.same(
    order('GpuSpotQueue'),
    [arn('GpuSpotEnvironment'), arn('GpuOnDemandEnvironment')],
    'GPU spot falls back to on-demand',
  );
  t.same(order('GpuOnDemandQueue'), [arn('GpuOnDemandEnvironment')]);
  t.same(
    order('TransferQueue'),
    [arn('CpuOnDemandEnvironment')],
    'copy/publish never run on a GPU environment',
  );

  for (const id of ['RenderJobDefinition', 'TransferJobDefinition']) {
    const props = resources.get(id)?.props as {
      RetryStrategy: { Attempts: number; EvaluateOnExit: Array<Record<string, string>> };
      Timeout: { AttemptDurationSeconds: number };
      ContainerProperties: {
        Volumes: Array<{
          Name: string;
          EfsVolumeConfiguration: { FileSystemId: string; TransitEncryption: string };
        }>;
        MountPoints: Array<{ SourceVolume: string; ContainerPath: string }>;
        JobRoleArn: string;
        LogConfiguration: { LogDriver: string; Options: Record<string, string> };
      };
    };
    t.equal(props.RetryStrategy.Attempts, 3, `${id} attempts`);
    t.same(
      props.RetryStrategy.EvaluateOnExit[0],
      { OnStatusReason: 'Host EC2*', Action: 'RETRY' },
      `${id} retries host loss`,
    );
    t.same(
      props.RetryStrategy.EvaluateOnExit.at(-1),
      { OnReason: '*', Action: 'EXIT' },
      `${id} exits on anything else`,
    );
    t.ok(props.Timeout.AttemptDurationSeconds > 0, `${id} has a timeout`);
    const volume = props.ContainerProperties.Volumes[0];
    t.equal(volume?.EfsVolumeConfiguration.FileSystemId, arn('FileSystem'), `${id} mounts the stack's EFS`);
    t.equal(volume?.EfsVolumeConfiguration.TransitEncryption, 'ENABLED');
    t.same(
      props.ContainerProperties.MountPoints.map((m) => [m.SourceVolume, m.ContainerPath]),
      [[volume?.Name, '/mnt/efs']],
    );
    t.equal(props.ContainerProperties.LogConfiguration.Options['awslogs-group'], arn('LogGroup'));
  }
  const logGroup = template.Resources.LogGroup?.Properties;
  t.same(logGroup?.RetentionInDays, { Ref: 'RetentionDays' }, 'log retention follows RetentionDays');
});

t.test('leaves a marked place for the Batch pipeline EventBridge rule', async (t) => {
  t.match(body, /BATCH PIPELINE HOOK[^\n]*\n(#[^\n]*\n|\s*#[^\n]*\n)*[^\n]*EventBridge/);
});
