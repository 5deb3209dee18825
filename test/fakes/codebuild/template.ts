// Reads the worker image's CodeBuild project from the real stack template (infra/skyfarm.yaml): its
// name, environment variables, source location, log group and buildspec, so the fake builds what the
// template says (the image reference it pushes comes from the buildspec's `docker push`).
import { loadTemplate, type TemplateValue } from '../../../daemon/src/stack/template.js';
import { ACCOUNT, REGION, type FakeProject } from './server.js';

export function projectFromTemplate(options: { bucket: string; namePrefix?: string }): FakeProject & {
  repository: string;
} {
  const { template } = loadTemplate();
  const prefix = options.namePrefix ?? 'skyfarm';
  const repository = `${prefix}/worker`;
  const resource = template.Resources['WorkerImageBuild'];
  if (!resource) throw new Error('infra/skyfarm.yaml has no WorkerImageBuild');
  const props = resource.Properties as Record<string, TemplateValue>;
  const sub = (value: TemplateValue | undefined): string => {
    if (typeof value === 'string') return value;
    const v = value as Record<string, TemplateValue>;
    if (typeof v?.['Fn::Sub'] === 'string') {
      return (v['Fn::Sub'] as string)
        .replace(/\$\{NamePrefix\}/g, prefix)
        .replace(/\$\{Bucket\}/g, options.bucket);
    }
    if (v?.['Fn::GetAtt'] !== undefined) {
      const [id, attr] = v['Fn::GetAtt'] as string[];
      if (id === 'Repository' && attr === 'RepositoryUri')
        return `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/${repository}`;
    }
    if (v?.['Ref'] === 'DefaultBlenderVersion') {
      const parameter = template.Parameters?.['DefaultBlenderVersion'] as { Default?: string } | undefined;
      return parameter?.Default ?? '4.2.3';
    }
    if (v?.['Ref'] === 'LogGroup') return `/skyfarm/${prefix}`;
    throw new Error(`projectFromTemplate cannot resolve ${JSON.stringify(value)}`);
  };
  const source = props['Source'] as Record<string, TemplateValue>;
  const environment = props['Environment'] as Record<string, TemplateValue>;
  const variables = (environment['EnvironmentVariables'] as Array<Record<string, TemplateValue>>) ?? [];
  const logs = (props['LogsConfig'] as Record<string, Record<string, TemplateValue>> | undefined)?.[
    'CloudWatchLogs'
  ];
  return {
    name: sub(props['Name']),
    environment: Object.fromEntries(variables.map((v) => [String(v['Name']), sub(v['Value'])])),
    sourceLocation: sub(source['Location']),
    buildspec: String(source['BuildSpec'] ?? ''),
    ...(logs?.['GroupName'] ? { logGroup: sub(logs['GroupName']) } : {}),
    repository,
  };
}
