// Security and cost properties of infra/skyfarm.yaml, checked on the resolved resources of a stack
// instance (GPU and mail on, so conditional statements are included).
import t from 'tap';
import { loadTemplate } from '../daemon/src/stack/template.js';
import { instantiate } from './fakes/cloudformation/template-eval.js';

const { template } = loadTemplate();
const { resources, scope } = instantiate(
  template,
  { EnableGpu: 'true', NotifyEmail: 'farm@example.com', NamePrefix: 'skyfarm' },
  { stackName: 'skyfarm', region: 'eu-west-1', accountId: '123456789012' },
);

type Props = Record<string, unknown>;
const props = (id: string) => {
  const r = resources.get(id);
  if (!r) throw new Error(`no resource ${id}`);
  return r.props as Props;
};
const ofType = (type: string) => [...resources].filter(([, r]) => r.type === type);
const physical = (id: string) => resources.get(id)?.physicalId as string;

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: string | string[];
  Principal?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}
const list = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

t.test('bucket: private, encrypted, TLS only, lifecycle', async (t) => {
  const bucket = props('Bucket');
  t.same(bucket.PublicAccessBlockConfiguration, {
    BlockPublicAcls: true,
    BlockPublicPolicy: true,
    IgnorePublicAcls: true,
    RestrictPublicBuckets: true,
  });
  const sse = (bucket.BucketEncryption as { ServerSideEncryptionConfiguration: Array<Props> })
    .ServerSideEncryptionConfiguration;
  t.match(
    sse[0],
    { ServerSideEncryptionByDefault: { SSEAlgorithm: /^(AES256|aws:kms)$/ } },
    'default encryption',
  );
  t.same(
    (bucket.OwnershipControls as { Rules: unknown[] }).Rules,
    [{ ObjectOwnership: 'BucketOwnerEnforced' }],
    'no ACLs',
  );

  const policy = props('BucketPolicy');
  t.equal(policy.Bucket, physical('Bucket'));
  const statements = (policy.PolicyDocument as { Statement: Statement[] }).Statement;
  const tls = statements.find(
    (s) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false',
  );
  t.ok(tls, 'a Deny on aws:SecureTransport=false exists');
  t.same(list(tls?.Action), ['s3:*']);
  t.equal(tls?.Principal, '*');
  t.same(
    list(tls?.Resource).sort(),
    [`arn:aws:s3:::${physical('Bucket')}`, `arn:aws:s3:::${physical('Bucket')}/*`].sort(),
  );
  t.notOk(
    statements.some((s) => s.Effect === 'Allow'),
    'the bucket policy grants nothing',
  );

  const rules = (bucket.LifecycleConfiguration as { Rules: Array<Props> }).Rules;
  const jobs = rules.find((r) => r.Prefix === 'jobs/');
  t.equal(jobs?.Status, 'Enabled');
  t.equal(
    String(jobs?.ExpirationInDays),
    String(scope.params.RetentionDays),
    'jobs/ expires after RetentionDays',
  );
  const abort = rules.find((r) => r.AbortIncompleteMultipartUpload !== undefined);
  t.equal(abort?.Status, 'Enabled');
  t.ok((abort?.AbortIncompleteMultipartUpload as { DaysAfterInitiation: number }).DaysAfterInitiation >= 1);
  t.equal(abort?.Prefix, undefined, 'aborts incomplete uploads everywhere');
});

t.test('network: public subnets in two AZs, no NAT, S3 gateway endpoint', async (t) => {
  t.same(ofType('AWS::EC2::NatGateway'), [], 'no NAT gateway');
  t.same(ofType('AWS::EC2::EIP'), [], 'no elastic IP');
  const subnets = ofType('AWS::EC2::Subnet');
  t.equal(subnets.length, 2);
  t.same(new Set(subnets.map(([, s]) => (s.props as Props).AvailabilityZone)).size, 2, 'two different AZs');
  for (const [, s] of subnets)
    t.equal((s.props as Props).MapPublicIpOnLaunch, true, 'instances get public IPs');
  const route = props('PublicDefaultRoute');
  t.equal(route.DestinationCidrBlock, '0.0.0.0/0');
  t.equal(route.GatewayId, physical('InternetGateway'));
  const endpoint = props('S3GatewayEndpoint');
  t.equal(endpoint.VpcEndpointType, 'Gateway');
  t.equal(endpoint.ServiceName, 'com.amazonaws.eu-west-1.s3');
  t.same(endpoint.RouteTableIds, [physical('PublicRouteTable')]);
});

t.test('EFS: encrypted, elastic, NFS only from the Batch security group', async (t) => {
  const fs = props('FileSystem');
  t.equal(fs.Encrypted, true);
  t.equal(fs.ThroughputMode, 'elastic');
  const targets = ofType('AWS::EFS::MountTarget').map(([, r]) => r.props as Props);
  t.same(
    targets.map((m) => m.SubnetId).sort(),
    [physical('SubnetA'), physical('SubnetB')].sort(),
    'a mount target per subnet',
  );
  for (const m of targets) t.same(m.SecurityGroups, [physical('SecurityGroup')]);

  const groups = ofType('AWS::EC2::SecurityGroup');
  t.equal(groups.length, 1, 'one security group');
  t.same((groups[0]?.[1].props as Props).SecurityGroupIngress ?? [], [], 'no inline ingress');
  const ingress = ofType('AWS::EC2::SecurityGroupIngress').map(([, r]) => r.props as Props);
  t.equal(ingress.length, 1);
  t.match(ingress[0], {
    GroupId: physical('SecurityGroup'),
    SourceSecurityGroupId: physical('SecurityGroup'),
    IpProtocol: 'tcp',
    FromPort: 2049,
    ToPort: 2049,
  });
  t.equal(ingress[0]?.CidrIp, undefined, 'no CIDR ingress');
  t.equal(ingress[0]?.CidrIpv6, undefined);
});

t.test('IAM: no wildcard resources on S3, SES, ECR or log data actions', async (t) => {
  const bucketArn = `arn:aws:s3:::${physical('Bucket')}`;
  const repoArn = `arn:aws:ecr:eu-west-1:123456789012:repository/${physical('Repository')}`;
  const logGroupArn = `arn:aws:logs:eu-west-1:123456789012:log-group:${physical('LogGroup')}:*`;
  const identityArn = 'arn:aws:ses:eu-west-1:123456789012:identity/farm@example.com';
  // Actions AWS only grants on "*" (no resource-level permissions), which are not data actions.
  const unscoped = /^(ecr:GetAuthorizationToken|ecs:[A-Za-z*]+|ec2:DescribeTags)$/;
  let checked = 0;
  for (const [id, role] of ofType('AWS::IAM::Role')) {
    const policies =
      ((role.props as Props).Policies as Array<{ PolicyDocument: { Statement: Statement[] } }>) ?? [];
    for (const statement of policies.flatMap((p) => p.PolicyDocument.Statement)) {
      t.equal(statement.Effect, 'Allow');
      const actions = list(statement.Action);
      const resourcesOf = list(statement.Resource);
      for (const action of actions) {
        t.not(action, '*', `${id}: no Action *`);
        t.notMatch(action, /^[a-z0-9]+:\*$/, `${id}: no service-wide ${action}`);
        if (unscoped.test(action)) continue;
        checked++;
        t.notOk(resourcesOf.includes('*'), `${id}: ${action} is not granted on *`);
        const allowed = action.startsWith('s3:')
          ? [bucketArn, `${bucketArn}/*`, `${bucketArn}/build/*`]
          : action.startsWith('ecr:')
            ? [repoArn]
            : action.startsWith('logs:')
              ? [logGroupArn]
              : action.startsWith('ses:')
                ? [identityArn]
                : action === 'batch:SubmitJob'
                  ? [physical('TransferQueue'), physical('PublishAfterFailureJobDefinition')]
                  : [];
        t.ok(allowed.length > 0, `${id}: ${action} is a known data action`);
        for (const r of resourcesOf)
          t.ok(allowed.includes(r), `${id}: ${action} on ${r} is limited to this stack`);
      }
      if (actions.some((a) => a.startsWith('ses:'))) {
        t.same(
          statement.Condition?.StringEquals?.['ses:FromAddress'],
          'farm@example.com',
          'mail only from the configured address',
        );
      }
    }
  }
  t.ok(checked > 15, `data actions were checked (${checked})`);

  const managed = ofType('AWS::IAM::Role').flatMap(([, r]) =>
    list((r.props as Props).ManagedPolicyArns as string[] | undefined),
  );
  t.same(
    managed,
    ['arn:aws:iam::aws:policy/service-role/AWSBatchServiceRole'],
    'only the Batch service role uses a managed policy',
  );

  const jobRole = props('JobRole');
  const principal = (jobRole.AssumeRolePolicyDocument as { Statement: Statement[] }).Statement[0]?.Principal;
  t.same(principal, { Service: 'ecs-tasks.amazonaws.com' }, 'the job role is for containers only');

  const noMail = instantiate(template, { NotifyEmail: '' }).resources.get('JobRole')?.props as Props;
  const noMailActions = (
    (noMail.Policies as Array<{ PolicyDocument: { Statement: Statement[] } }>)[0]?.PolicyDocument.Statement ??
    []
  ).flatMap((s) => list(s.Action));
  t.notOk(
    noMailActions.some((a) => a.startsWith('ses:')),
    'no SES permission without a notify address',
  );
});

t.test('Batch: scale to zero, spot strategy, GPU optional', async (t) => {
  const envs = ofType('AWS::Batch::ComputeEnvironment');
  t.equal(envs.length, 4);
  for (const [id, env] of envs) {
    const p = env.props as Props;
    const compute = p.ComputeResources as Props;
    t.equal(p.Type, 'MANAGED', `${id} managed`);
    t.equal(compute.MinvCpus, 0, `${id} min vCPUs 0`);
    t.equal(compute.DesiredvCpus, undefined, `${id} pins no desired vCPUs`);
    t.equal(String(compute.MaxvCpus), String(scope.params.MaxVcpus), `${id} max vCPUs from the parameter`);
    if (compute.Type === 'SPOT')
      t.equal(compute.AllocationStrategy, 'SPOT_PRICE_CAPACITY_OPTIMIZED', `${id} spot strategy`);
    else t.equal(compute.Type, 'EC2', `${id} on-demand`);
    t.same(compute.SecurityGroupIds, [physical('SecurityGroup')]);
  }
  t.same(
    envs.map(([id, e]) => `${id}:${(e.props as { ComputeResources: Props }).ComputeResources.Type}`).sort(),
    [
      'CpuOnDemandEnvironment:EC2',
      'CpuSpotEnvironment:SPOT',
      'GpuOnDemandEnvironment:EC2',
      'GpuSpotEnvironment:SPOT',
    ],
  );
  for (const id of ['GpuSpotEnvironment', 'GpuOnDemandEnvironment', 'GpuSpotQueue', 'GpuOnDemandQueue']) {
    t.equal(template.Resources[id]?.Condition, 'GpuEnabled', `${id} only with EnableGpu`);
  }
  t.same(
    (props('GpuSpotEnvironment').ComputeResources as Props).InstanceTypes,
    ['g4dn', 'g5', 'g6'],
    'GPU instance types come from the parameter',
  );
});

t.test('ECR and CodeBuild', async (t) => {
  const repo = props('Repository');
  t.same(repo.ImageScanningConfiguration, { ScanOnPush: true });
  const lifecycle = JSON.parse(
    (repo.LifecyclePolicy as { LifecyclePolicyText: string }).LifecyclePolicyText,
  ) as {
    rules: Array<{ selection: Props; action: Props }>;
  };
  t.ok(lifecycle.rules.length >= 2);
  t.ok(
    lifecycle.rules.some((r) => r.selection.tagStatus === 'untagged'),
    'superseded images expire',
  );
  t.ok(
    lifecycle.rules.some((r) => r.selection.countType === 'imageCountMoreThan'),
    'tagged images are capped',
  );
  const build = props('WorkerImageBuild');
  t.match(build.Source, { Type: 'S3', Location: `${physical('Bucket')}/build/worker.zip` });
  t.match((build.Source as Props).BuildSpec, /docker push "\$REPOSITORY_URI:\$BLENDER_VERSION"/);
  t.match((build.Source as Props).BuildSpec, /-f infra\/Dockerfile /);
  t.equal((build.Environment as Props).PrivilegedMode, true, 'docker builds need privileged mode');
  t.equal(build.ServiceRole, `arn:aws:iam::123456789012:role/${physical('CodeBuildRole')}`);
});
