// The notification mail publish sends through SES v2: what finished, what failed and why, and how to
// fetch the frames.
import { SendEmailCommand, SESv2Client } from '@aws-sdk/client-sesv2';
import { formatFrameList } from '../../daemon/src/render/frames.js';
import type { JobResult, WorkerJobDocument } from '../../daemon/src/batch/layout.js';

export interface Mail {
  subject: string;
  body: string;
}

const MAX_LISTED_FAILURES = 20;

export function composeMail(job: WorkerJobDocument, result: JobResult): Mail {
  const total = job.frames.length;
  const bad = result.failed.length + result.missing.length;
  const stopped = result.stopped && result.state !== 'canceled';
  const subject = stopped
    ? `skyfarm: ${job.name} stopped at its budget (${result.ok.length} of ${total} frames)`
    : {
        succeeded: `skyfarm: ${job.name} rendered (${total} frames)`,
        partial: `skyfarm: ${job.name} finished with ${bad} of ${total} frames failed`,
        failed: `skyfarm: ${job.name} failed`,
        canceled: `skyfarm: ${job.name} canceled`,
      }[result.state];
  const lines = [
    stopped
      ? `The render of scene "${job.scene}" was stopped: ${result.stopped}; ${result.ok.length} of ${total} frames were finished.`
      : {
          succeeded: `All ${total} frames of scene "${job.scene}" rendered.`,
          partial: `${result.ok.length} of ${total} frames of scene "${job.scene}" rendered; ${bad} did not.`,
          failed: `The render of scene "${job.scene}" failed: no frame was produced.`,
          canceled: `The render of scene "${job.scene}" was canceled; ${result.ok.length} of ${total} frames were finished.`,
        }[result.state],
    '',
    `Job:    ${job.jobId}`,
    `File:   ${job.sourceBlendFile}`,
    `Frames: ${formatFrameList(job.frames, { maxParts: 10 })}`,
  ];
  if (result.reason) lines.push(`Reason: ${result.reason}`);
  // The daemon's estimate as it last wrote it (compute of copy and render; publish is not in it).
  lines.push(`Cost:   ${result.cost ?? 'cost unknown: the skyfarm daemon made no estimate for this job'}`);
  if (result.failed.length) {
    lines.push('', 'Failed frames:');
    for (const failure of result.failed.slice(0, MAX_LISTED_FAILURES))
      lines.push(`  ${failure.frame}: ${failure.message}`);
    if (result.failed.length > MAX_LISTED_FAILURES)
      lines.push(`  … and ${result.failed.length - MAX_LISTED_FAILURES} more`);
  }
  if (result.missing.length) {
    lines.push('', `Not rendered: ${formatFrameList(result.missing, { maxParts: 20 })}`);
  }
  if (result.ok.length) {
    lines.push(
      '',
      'Fetch the frames with:',
      `  skyfarm download ${job.jobId} --output DIR`,
      `or: aws s3 cp --recursive s3://${job.bucket}/jobs/${job.jobId}/output/ DIR`,
    );
  }
  lines.push('', `Details: skyfarm status ${job.jobId}  ·  logs: skyfarm logs ${job.jobId}`);
  return { subject, body: lines.join('\n') + '\n' };
}

export async function sendMail(
  client: SESv2Client,
  from: string,
  to: string,
  mail: Mail,
): Promise<{ messageId?: string }> {
  const response = await client.send(
    new SendEmailCommand({
      FromEmailAddress: from,
      Destination: { ToAddresses: [to] },
      Content: {
        Simple: {
          Subject: { Data: mail.subject, Charset: 'UTF-8' },
          Body: { Text: { Data: mail.body, Charset: 'UTF-8' } },
        },
      },
    }),
  );
  return response.MessageId ? { messageId: response.MessageId } : {};
}
