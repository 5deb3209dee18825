// The generated TypeScript and Python protocol files match protocol/schema.json.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

t.test('generated protocol files are current', async (t) => {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'protocol/generate.ts', '--check'], {
    cwd: root,
    encoding: 'utf8',
  });
  t.equal(result.status, 0, `protocol:check passes: ${result.stderr}`);
});

t.test('the check notices a stale file', async (t) => {
  const dir = t.testdir({});
  const { cpSync, appendFileSync, mkdirSync } = await import('node:fs');
  for (const path of ['protocol', 'blender-addon/skyfarm']) {
    mkdirSync(`${dir}/${path}`, { recursive: true });
    cpSync(`${root}/${path}`, `${dir}/${path}`, { recursive: true });
  }
  appendFileSync(`${dir}/blender-addon/skyfarm/protocol.py`, '# edited by hand\n');
  const result = spawnSync(process.execPath, ['--import', 'tsx', `${dir}/protocol/generate.ts`, '--check'], {
    cwd: root,
    encoding: 'utf8',
  });
  t.equal(result.status, 1, 'exit code 1');
  t.match(result.stderr, /protocol\.py is stale/);
});
