// A dependency list of 100,000 files with long paths (a fluid cache's size) fits the protocol: the
// CLI's client sends it by reference (a 0600 file in the state dir's lists/ that the daemon reads
// once and deletes), the daemon reads all of it, and replies and errors list the first missing files
// with the count of all. A list the daemon must not trust is refused with the reason.
import t from 'tap';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { LIMITS, type Dependency } from '../protocol/generated/protocol.js';
import { DaemonClient } from '../daemon/src/client/daemon-client.js';
import { SkyfarmError } from '../daemon/src/errors.js';
import {
  listsDir,
  readDependencyList,
  RecentDependencyLists,
  writeDependencyList,
} from '../daemon/src/protocol/dependency-list.js';
import { startTestDaemon } from './helpers/daemon.js';
import { blenderSkip, makeScene } from './helpers/scenes.js';
import { until } from './helpers/until.js';

const FILES = 100_000;
const PRESENT = 50;

/** A project folder with a .blend, PRESENT small files and a list of FILES dependencies (the rest missing). */
function project(
  dir: string,
  blend?: string,
): { blend: string; dependencies: Dependency[]; missing: string[] } {
  mkdirSync(dir, { recursive: true });
  const blendFile = blend ?? join(dir, 'shot.blend');
  if (!blend) writeFileSync(blendFile, Buffer.concat([Buffer.from('BLENDER-v304'), Buffer.alloc(512, 1)]));
  const deep = join(
    dir,
    'caches',
    'fluid simulation of the harbour — take 12 (final)',
    'cache_fluid_8c2e',
    'data',
  );
  mkdirSync(join(dir, 'textures'), { recursive: true });
  const dependencies: Dependency[] = [];
  const missing: string[] = [];
  for (let i = 0; i < FILES; i++) {
    if (i < PRESENT) {
      const file = join(dir, 'textures', `plate_${i}.png`);
      writeFileSync(file, `texture ${i}`);
      dependencies.push({ path: file, kind: 'image', missing: false, relative: true });
    } else {
      const file = join(deep, `fluid_data_particles_and_mesh_${String(i).padStart(6, '0')}.vdb`);
      dependencies.push({ path: file, kind: 'volume', missing: true, relative: true });
      missing.push(file);
    }
  }
  return { blend: blendFile, dependencies, missing };
}

async function rejection(promise: Promise<unknown>): Promise<SkyfarmError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof SkyfarmError) return error;
    throw error;
  }
  throw new Error('the request succeeded');
}

t.test('a 100,000-file list with long paths goes by reference and is read whole', async (t) => {
  const dir = t.testdir({});
  const daemon = await startTestDaemon(t);
  const client = await DaemonClient.connect({ stateDir: daemon.paths.root });
  t.teardown(() => client.close());
  const { blend, dependencies, missing } = project(join(dir, 'project'));
  const inline = Buffer.byteLength(JSON.stringify({ dependencies }));
  t.ok(inline > 10 * LIMITS.maxMessageBytes, `inline the list would be ${inline} bytes`);

  const result = await client.request('project.upload', { blendFile: blend, dependencies });
  t.equal(result.files, PRESENT + 1, 'every present file (and the .blend) is uploaded');
  t.equal(result.missingCount, FILES - PRESENT, 'every missing file is counted');
  t.ok(
    result.missing.length > 0 && result.missing.length <= LIMITS.maxMissingListed,
    'the first ones listed',
  );
  t.same(result.missing.slice(0, 3), missing.slice(0, 3), 'in the order of the list');
  t.same(readdirSync(listsDir(daemon.paths.root)), [], 'the list file is gone');

  // Strict: refused with a message that names the first files and counts the rest.
  const strict = await rejection(
    client.request('project.upload', { blendFile: blend, dependencies, strict: true }),
  );
  t.equal(strict.code, 'MISSING_DEPENDENCIES');
  t.match(strict.message, `${FILES - PRESENT} file(s) the scene needs are missing`);
  t.match(strict.message, /fluid_data_particles_and_mesh_000050\.vdb.* and 99,9\d\d more$/);
  t.ok(strict.message.length < 8192, `the message is ${strict.message.length} characters`);
  t.same(readdirSync(listsDir(daemon.paths.root)), [], 'the refused request left no list behind');
});

t.test('lists the daemon does not trust are refused, saying why', async (t) => {
  const dir = t.testdir({});
  const daemon = await startTestDaemon(t);
  const client = await DaemonClient.connect({ stateDir: daemon.paths.root });
  t.teardown(() => client.close());
  const blend = join(dir, 'shot.blend');
  writeFileSync(blend, Buffer.concat([Buffer.from('BLENDER-v304'), Buffer.alloc(64)]));
  const lists = listsDir(daemon.paths.root);
  mkdirSync(lists, { recursive: true, mode: 0o700 });
  const write = (name: string, text: string, mode = 0o600) => {
    const path = join(name.startsWith('/') ? '' : lists, name);
    writeFileSync(path, text, { mode });
    chmodSync(path, mode);
    return { path, sha256: createHash('sha256').update(text).digest('hex') };
  };
  const good = `${JSON.stringify({ path: join(dir, 'a.png') })}\n${JSON.stringify({ path: join(dir, 'b.png') })}\n`;
  const cases: Array<[string, { path: string; sha256: string; count: number }, RegExp]> = [
    [
      'outside lists/',
      { ...write(join(dir, 'elsewhere.jsonl'), good), count: 2 },
      /is not a \.jsonl file in .*lists/,
    ],
    [
      'readable by others',
      { ...write('open.jsonl', good, 0o644), count: 2 },
      /readable by other users \(mode 644\)/,
    ],
    [
      'changed since written',
      { ...write('changed.jsonl', good), sha256: 'f'.repeat(64), count: 2 },
      /has sha256 [0-9a-f]{64}, not f{64}/,
    ],
    [
      'a wrong count',
      { ...write('count.jsonl', good), count: 3 },
      /holds 2 dependencies, the request announced 3/,
    ],
    [
      'a line that is not JSON',
      { ...write('json.jsonl', `${good}{"path":\n`), count: 3 },
      /line 3 of .* is not JSON/,
    ],
    [
      'a line that is no Dependency',
      { ...write('kind.jsonl', `${good}{"path":"/x","size":1}\n`), count: 3 },
      /line 3 has unknown field "size"/,
    ],
    [
      'a file that does not exist',
      { path: join(lists, 'gone.jsonl'), sha256: '0'.repeat(64), count: 1 },
      /does not exist/,
    ],
  ];
  for (const [what, dependencyList, message] of cases) {
    const error = await rejection(client.request('project.upload', { blendFile: blend, dependencyList }));
    t.equal(error.code, 'BAD_ARGUMENT', `${what}: BAD_ARGUMENT`);
    t.match(error.message, message, `${what}: says why`);
  }
  t.ok(existsSync(join(dir, 'elsewhere.jsonl')), 'a file outside lists/ is not touched');
  t.same(readdirSync(lists), [], 'every list in lists/ was removed after its one reading');
  const both = write('both.jsonl', good);
  const error = await rejection(
    client.request('project.upload', {
      blendFile: blend,
      dependencies: [],
      dependencyList: { ...both, count: 2 },
    }),
  );
  t.match(error, { code: 'BAD_ARGUMENT', message: /dependencies or dependencyList, not both/ });
  t.same(readdirSync(lists), [], 'removed too');
});

t.test('a re-submit of the same list is not parsed again, and is still checked', async (t) => {
  const state = t.testdir({});
  const recent = new RecentDependencyLists({ lingerMs: 300 });
  const dependencies: Dependency[] = Array.from({ length: 2000 }, (_, i) => ({
    path: `/projects/shot/cache/frame_${i}.bphys`,
    kind: 'cache',
  }));
  const first = await readDependencyList(state, writeDependencyList(state, dependencies), recent);
  t.same(first, dependencies, 'read whole');
  const again = await readDependencyList(state, writeDependencyList(state, dependencies), recent);
  t.equal(again, first, 'the same bytes again: the list parsed before');
  t.same(readdirSync(listsDir(state)), [], 'each file is still read once and deleted');

  const changed = dependencies.map((d, i) => (i === 7 ? { ...d, path: '/projects/shot/other.png' } : d));
  const other = await readDependencyList(state, writeDependencyList(state, changed), recent);
  t.equal(other[7]?.path, '/projects/shot/other.png', 'other bytes are parsed');

  const miscounted = { ...writeDependencyList(state, dependencies), count: 1999 };
  await t.rejects(
    readDependencyList(state, miscounted, recent),
    /holds more than the 1999 dependencies the request announced/,
    'a wrong count is refused even for bytes read before',
  );
  const tampered = writeDependencyList(state, dependencies);
  writeFileSync(tampered.path, readFileSync(tampered.path, 'utf8').replace('frame_1.', 'frame_X.'));
  await t.rejects(
    readDependencyList(state, tampered, recent),
    /has sha256 [0-9a-f]{64}, not/,
    'changed bytes',
  );

  await new Promise((resolve) => setTimeout(resolve, 400));
  const later = await readDependencyList(state, writeDependencyList(state, dependencies), recent);
  t.not(later, first, 'past the window it is parsed again');
  t.same(later, dependencies);
});

t.test('a list the client wrote is 0600 and goes away when the request is not answered', async (t) => {
  const daemon = await startTestDaemon(t);
  const client = await DaemonClient.connect({ stateDir: daemon.paths.root });
  const { blend, dependencies } = project(t.testdir({}));
  const lists = listsDir(daemon.paths.root);
  const pending = client.request('project.upload', { blendFile: blend, dependencies });
  // Written before the request is sent; the connection then ends before the daemon answers.
  const written = readdirSync(lists);
  t.equal(written.length, 1, 'one list written');
  t.equal(statSync(join(lists, written[0]!)).mode & 0o777, 0o600, 'readable by this user only');
  t.equal(statSync(lists).mode & 0o777, 0o700, 'in a folder only this user can enter');
  client.close();
  const error = await rejection(pending);
  t.equal(error.code, 'DAEMON_UNREACHABLE');
  await until('the list removed', () => readdirSync(lists).length === 0, 5000);
  t.pass('the list is removed');
});

t.test('render.submit with 100,000 files renders on the local backend', { skip: blenderSkip }, async (t) => {
  const dir = t.testdir({});
  const daemon = await startTestDaemon(t);
  const client = await DaemonClient.connect({ stateDir: daemon.paths.root });
  t.teardown(() => client.close());
  const scene = await makeScene(join(dir, 'project'), {
    frames: [1, 1],
    textures: [{ path: 'tex/wood.png' }],
  });
  const { dependencies } = project(join(dir, 'project'), scene);
  dependencies.push({
    path: join(dir, 'project', 'tex', 'wood.png'),
    kind: 'image',
    missing: false,
    relative: true,
  });
  const updates: Array<{ id: string; state: string; message: string }> = [];
  client.onEvent((event, data) => {
    if (event === 'job.update') updates.push(data as never);
  });
  const { job, missing, missingCount } = await client.request('render.submit', {
    blendFile: scene,
    output: join(dir, 'frames'),
    dependencies,
  });
  t.equal(missingCount, FILES - PRESENT);
  t.ok(missing && missing.length <= LIMITS.maxMissingListed);
  await until(
    'the job to end',
    () => updates.some((u) => u.id === job.id && ['done', 'failed'].includes(u.state)),
    180_000,
    50,
  );
  const last = updates.filter((u) => u.id === job.id).at(-1)!;
  t.equal(last.state, 'done', `the job renders (${last.message})`);
  t.ok(existsSync(join(dir, 'frames', 'frame_0001.png')), 'its frame is delivered');
  const stored = updates.find((u) => u.id === job.id && /stored \d+ files/.test(u.message));
  t.match(
    stored?.message,
    /stored \d+ files \(\d+ new bytes\); 99950 missing: [^,]*fluid_data_particles_and_mesh_000050\.vdb, .* and 99,947 more$/,
  );
  t.ok((stored?.message.length ?? 0) < 8192, 'the job message stays within the protocol');
  const log = readFileSync(join(daemon.paths.logs, `${job.id}.log`), 'utf8');
  t.equal(
    log.match(/^\[skyfarm\] missing .*\.vdb$/gm)?.length,
    FILES - PRESENT,
    'the job log names every missing file',
  );
  const { lines } = await client.request('jobs.logs', { jobId: job.id, tail: 100_000 });
  t.match(
    lines[0],
    /^\[skyfarm\] … \d+ earlier lines not shown/,
    'a long log comes back as its newest lines',
  );
  t.ok(lines.length > 1000, `${lines.length} of them`);
});
