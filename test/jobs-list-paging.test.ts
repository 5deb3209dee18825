// A long job history is listed in pages: each jobs.list reply stays well under the message limit
// (which the add-on and the CLI enforce), and `skyfarm jobs` still shows every job, newest first.
import t from 'tap';
import { LIMITS } from '../protocol/generated/protocol.js';
import { JobRepo } from '../daemon/src/jobs/job-repo.js';
import type { JobSpec } from '../daemon/src/jobs/job-spec.js';
import { connectTestClient, startTestDaemon } from './helpers/daemon.js';
import { runCli } from './helpers/cli.js';

const JOBS = 300;
// Each job failed every one of its 2,000 frames: ~10 KB of JSON per job, ~3 MB for the history,
// three times what one message may carry.
const FRAMES_PER_JOB = 2000;

function spec(index: number): JobSpec {
  const frames = Array.from({ length: FRAMES_PER_JOB }, (_, i) => i + 1);
  return {
    jobId: `j_history${String(index).padStart(4, '0')}`,
    backend: 'local',
    blendFile: `/projects/shot${index}.blend`,
    sourceBlendFile: `/projects/shot${index}.blend`,
    projectRoot: '/projects',
    temporaryBlend: false,
    scene: 'Scene',
    frames,
    framesSpec: `1-${FRAMES_PER_JOB}`,
    chunkSize: 10,
    outputDir: '/projects/out',
    filePattern: 'frame_####',
    fileExtension: '.png',
    dependencies: [],
  };
}

t.test('jobs.list pages a history larger than one message', async (t) => {
  const daemon = await startTestDaemon(t);
  const repo = new JobRepo(daemon.db);
  daemon.db.transaction(() => {
    for (let i = 0; i < JOBS; i++) {
      const job = repo.create(spec(i), `shot ${i}`, new Date(Date.UTC(2026, 0, 1, 0, 0, i)));
      daemon.db.prepare(`UPDATE frames SET state = 'failed' WHERE job_id = ?`).run(job.id);
      daemon.db.prepare(`UPDATE jobs SET state = 'failed' WHERE id = ?`).run(job.id);
    }
  })();
  const client = await connectTestClient(t, daemon);

  const seen: string[] = [];
  let before: string | undefined;
  let pages = 0;
  do {
    const page = await client.request('jobs.list', before === undefined ? {} : { before });
    pages++;
    const size = Buffer.byteLength(
      JSON.stringify({ type: 'reply', id: 'x', method: 'jobs.list', result: page }),
    );
    t.ok(
      size < LIMITS.maxMessageBytes,
      `page ${pages} is ${size} bytes, under the ${LIMITS.maxMessageBytes} limit`,
    );
    t.ok(page.jobs.length > 0, `page ${pages} is not empty`);
    t.equal(page.jobs[0]?.failedFrames.length, FRAMES_PER_JOB, 'jobs are whole, not trimmed to fit');
    seen.push(...page.jobs.map((job) => job.id));
    before = page.next;
  } while (before !== undefined && pages < 100);
  t.ok(pages > 3, `the history took ${pages} pages`);
  t.equal(seen.length, JOBS, 'every job is listed once');
  t.equal(new Set(seen).size, JOBS, 'no job repeats across pages');
  t.equal(seen[0], spec(JOBS - 1).jobId, 'newest first');
  t.equal(seen[JOBS - 1], spec(0).jobId, 'oldest last');

  const limited = await client.request('jobs.list', { limit: 5 });
  t.equal(limited.jobs.length, 5, 'limit caps the page');
  t.equal(limited.next, limited.jobs[4]?.id, 'next continues after the last job shown');
  const rest = await client.request('jobs.list', { limit: 1000, before: spec(2).jobId });
  t.same(
    rest.jobs.map((job) => job.id),
    [spec(1).jobId, spec(0).jobId],
    'before lists only older jobs',
  );
  t.equal(rest.next, undefined, 'no next after the oldest job');

  await t.rejects(
    client.request('jobs.list', { before: 'j_nosuchjob' }),
    { code: 'JOB_NOT_FOUND' },
    'an unknown cursor is an error, not a silent restart from the newest job',
  );
  await t.rejects(
    client.request('jobs.list', { limit: 0 }),
    { code: 'INVALID_MESSAGE' },
    'limit 0 is refused',
  );

  const cli = await runCli(['jobs', '--json'], {
    env: { ...process.env, SKYFARM_HOME: daemon.paths.root },
    timeoutMs: 120_000,
  });
  t.equal(cli.code, 0, `skyfarm jobs exits 0 (${cli.stderr.trim()})`);
  const listed = JSON.parse(cli.stdout) as Array<{ id: string }>;
  t.same(
    listed.map((job) => job.id),
    seen,
    'skyfarm jobs --json prints the whole history, newest first',
  );
});
