// The compiled daemon for metrics that run it as its own process (`node dist/…/main.js daemon`, as
// users run it). The repository's dist/ is used when it is at least as new as every source file;
// otherwise the sources are compiled into a private copy of the layout under the bench's temporary
// folder (package.json, node_modules and the source folders linked), leaving dist/ alone.
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { check, run } from './proc.js';
import type { BenchContext } from './types.js';

const SOURCES = ['daemon/src', 'protocol/generated', 'infra/worker'];

function staleFiles(repoRoot: string): string[] {
  const stale: string[] = [];
  const visit = (rel: string) => {
    const abs = path.join(repoRoot, rel);
    for (const entry of readdirSync(abs, { withFileTypes: true })) {
      const child = path.join(rel, entry.name);
      if (entry.isDirectory()) visit(child);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        const out = path.join(repoRoot, 'dist', child.replace(/\.ts$/, '.js'));
        if (!existsSync(out) || statSync(out).mtimeMs < statSync(path.join(repoRoot, child)).mtimeMs)
          stale.push(child);
      }
    }
  };
  for (const dir of SOURCES) if (existsSync(path.join(repoRoot, dir))) visit(dir);
  return stale;
}

/** The CLI entry (`…/dist/daemon/src/cli/main.js`) of a build of the current sources. */
export function daemonBuild(ctx: BenchContext): Promise<{ cli: string; note: string }> {
  return ctx.shared('daemon-build', async () => {
    const stale = staleFiles(ctx.repoRoot);
    if (stale.length === 0) {
      return {
        cli: path.join(ctx.repoRoot, 'dist', 'daemon', 'src', 'cli', 'main.js'),
        note: 'dist/ (current)',
      };
    }
    ctx.log(`dist/ is older than ${stale.length} source file(s) (${stale[0]}…): compiling a private build`);
    const root = path.join(ctx.tmp, 'build');
    mkdirSync(root, { recursive: true });
    copyFileSync(path.join(ctx.repoRoot, 'package.json'), path.join(root, 'package.json'));
    for (const link of ['node_modules', 'daemon', 'infra', 'protocol']) {
      symlinkSync(path.join(ctx.repoRoot, link), path.join(root, link));
    }
    const result = await run(
      process.execPath,
      [
        path.join(ctx.repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'),
        '-p',
        path.join(ctx.repoRoot, 'tsconfig.build.json'),
        '--outDir',
        path.join(root, 'dist'),
      ],
      { cwd: ctx.repoRoot, timeoutMs: 10 * 60_000 },
    );
    const cli = path.join(root, 'dist', 'daemon', 'src', 'cli', 'main.js');
    // tsc still emits when the type check fails (someone's work in progress); only no output is fatal.
    if (!existsSync(cli)) check('tsc (private build)', result);
    const errors = result.code === 0 ? '' : ' (tsc reported type errors)';
    return { cli, note: `a private build of the current sources${errors}` };
  });
}
