// The stack's RenderFailedRule (infra/skyfarm.yaml) publishes partial frames, mails the failure and
// cleans the EFS folder when a render fails or is canceled — also for renders in another Blender
// version, whose render job definition the daemon derives from the stack's (`<prefix>-render-blender-X`).
// Checked with the fake EventBridge matcher against the ARN the real derivation produces.
import t from 'tap';
import type { JobDefinition } from '@aws-sdk/client-batch';
import { renderDefinitionFor, type IJobDefinitions } from '../daemon/src/images/job-definitions.js';
import { matchesPattern } from './fakes/batch/events.js';
import { ACCOUNT, REGION } from './fakes/batch/server.js';
import { farmFromTemplate } from './fakes/batch/template.js';

const arn = (name: string, revision: number) =>
  `arn:aws:batch:${REGION}:${ACCOUNT}:job-definition/${name}:${revision}`;

/** Batch's job definitions in memory: the stack's render definition, and what registerCopy adds. */
function definitions(prefix: string): IJobDefinitions {
  const defs: JobDefinition[] = [
    {
      jobDefinitionName: `${prefix}-render`,
      jobDefinitionArn: arn(`${prefix}-render`, 3),
      revision: 3,
      status: 'ACTIVE',
      type: 'container',
      containerProperties: { image: `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/${prefix}/worker:4.2.3` },
    },
  ];
  const info = (d: JobDefinition) => ({
    arn: d.jobDefinitionArn!,
    name: d.jobDefinitionName!,
    revision: d.revision!,
    image: d.containerProperties!.image!,
    tags: d.tags ?? {},
    source: d,
  });
  return {
    find(ref) {
      const found = defs.find((d) => d.jobDefinitionArn === ref || d.jobDefinitionName === ref);
      return Promise.resolve(found ? info(found) : undefined);
    },
    registerCopy(from, name, image, tags) {
      const copy: JobDefinition = {
        ...from,
        jobDefinitionName: name,
        jobDefinitionArn: arn(name, 1),
        revision: 1,
        containerProperties: { ...from.containerProperties, image },
        tags,
      };
      defs.push(copy);
      return Promise.resolve(copy.jobDefinitionArn!);
    },
  };
}

function renderFailed(jobDefinition: string, arrayIndex?: number) {
  return {
    source: 'aws.batch',
    'detail-type': 'Batch Job State Change',
    detail: {
      status: 'FAILED',
      jobDefinition,
      parameters: { skyfarmJobId: 'j_0123456789ab', skyfarmStage: 'render' },
      arrayProperties: arrayIndex === undefined ? { size: 2 } : { index: arrayIndex },
    },
  };
}

t.test(
  'RenderFailedRule fires for the stack’s render definition and those derived per Blender version',
  async (t) => {
    const { rules } = farmFromTemplate({ bucket: 'farm-bucket', namePrefix: 'skyfarm' });
    const rule = rules.find((r) => r.name.startsWith('RenderFailedRule'));
    if (!rule) throw new Error('the template has no RenderFailedRule');
    const defs = definitions('skyfarm');
    const stackDefinition = await renderDefinitionFor(defs, arn('skyfarm-render', 3), '4.2.3');
    const derived = await renderDefinitionFor(defs, arn('skyfarm-render', 3), '3.4.1');
    t.equal(
      stackDefinition,
      arn('skyfarm-render', 3),
      'the default version renders with the stack’s definition',
    );
    t.equal(derived, arn('skyfarm-render-blender-3-4-1', 1), 'another version gets a derived definition');

    t.ok(matchesPattern(rule.pattern, renderFailed(stackDefinition)), 'a failed render (stack definition)');
    t.ok(matchesPattern(rule.pattern, renderFailed(derived)), 'a failed render in another Blender version');
    t.notOk(
      matchesPattern(rule.pattern, renderFailed(derived, 0)),
      'not for each failed chunk (array child)',
    );
    // Another stack's renders are its own rule's business.
    const other = await renderDefinitionFor(definitions('other'), arn('other-render', 3), '3.4.1');
    t.notOk(matchesPattern(rule.pattern, renderFailed(other)), 'not for another stack’s derived definition');
    t.notOk(
      matchesPattern(rule.pattern, renderFailed(arn('skyfarm-transfer', 1))),
      'not for a failed copy or publish',
    );
  },
);
