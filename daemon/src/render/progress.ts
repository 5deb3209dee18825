// A pure parser of Blender's console output and of the marker lines that daemon/blender/*.py print.
// One line in, at most one event out; callers keep state. Two formats (fixtures of each version in
// test/fixtures/blender-logs/<version>/):
// - 3.4 to 4.x print plain lines: `Fra:1 Mem:9.40M (Peak 10.83M) | Time:00:00.05 | … | Sample 1/4`,
//   `Error: …`, `Warning: …`, `Saved: '…'`.
// - 5.x prints most of them through its log: `00:00.425  render           | Fra: 1 | Mem: 4M | Sample 1/32`,
//   `00:00.359  reports          | ERROR Failed to read …` (time since start, the log category
//   padded, the level unless it is INFO). Render status lines need `--log render` there
//   (renderLogArgs in blender.ts) except for `-f`/`-a`. Python's own output (tracebacks, and
//   reports of operators called from Python: `Error: …`) keeps the plain format.

export type BlenderEvent =
  /** Blender's render status line `Fra:12 Mem:… | Time:00:01.23 | … | <status>` (5.x: no Time). */
  | { type: 'frame'; frame: number; elapsedSeconds: number | null; status: string }
  /** Cycles `… | Sample 5/16` or Eevee `… | Rendering 3 / 16 samples` (both on a `Fra:` line). */
  | { type: 'samples'; frame: number | null; done: number; total: number; engine: 'cycles' | 'eevee' }
  /** `Saved: '/path/frame_0001.png'` (Blender's own writes, e.g. `-f`/`-a`). */
  | { type: 'saved'; path: string }
  /** ` Time: 00:01.23 (Saving: 00:00.34)` after a frame Blender wrote itself. */
  | { type: 'time'; seconds: number; savingSeconds: number | null }
  /**
   * `Error: …` (5.x: `… | ERROR …` or `FATAL …`) from Blender, or the last line of a Python
   * traceback (`RuntimeError: …`).
   */
  | { type: 'error'; source: 'blender' | 'python'; message: string }
  /** `Warning: …` (5.x: `… | WARNING …`) from Blender, or a Python warning (`file.py:3: UserWarning: …`). */
  | { type: 'warning'; message: string }
  /** `Traceback (most recent call last):`, possibly prefixed `Error: Python: ` by Blender. */
  | { type: 'traceback' }
  /** Blender's crash handler: `Writing: /tmp/blender.crash.txt`. */
  | { type: 'crash'; reportPath: string }
  /** The banner `Blender 3.4.1` / `Blender 4.2.0 (hash … built …)`. */
  | { type: 'version'; version: [number, number, number] }
  | { type: 'quit' }
  // Markers printed by daemon/blender/render_chunk.py and probe.py.
  | { type: 'frameStart'; frame: number }
  | { type: 'frameDone'; frame: number; seconds: number; path: string }
  | { type: 'frameSkipped'; frame: number; path: string }
  | { type: 'frameFailed'; frame: number; message: string }
  | { type: 'probe'; data: unknown };

const STATUS_LINE = /^Fra:(-?\d+) Mem:\S+ \(Peak [^)]*\)(.*)$/;
/** 5.x: `Fra: 1 | Remaining: 00:01.50 | Mem: 4M | Sample 1/32` (the log prefix removed). */
const LOG_STATUS_LINE = /^Fra: (-?\d+)((?: \|.*)?)$/;
/** 5.x log line: `[HH:]MM:SS.mmm  [<memory>M  ]<category padded to 16> | [FATAL |ERROR |WARNING ]<message>`. */
const LOG_LINE =
  /^(?:\d+:)?\d{2}:\d{2}\.\d{3}\s+(?:\d+M\s+)?[A-Za-z_][\w.-]*\s+\| (?:(FATAL|ERROR|WARNING) )?(.*)$/;
const PYTHON_WARNING = /^\S.*:\d+: ([A-Za-z_]\w*Warning): (.*)$/;
const CYCLES_SAMPLES = /\bSample (\d+)\/(\d+)\b/;
const EEVEE_SAMPLES = /\bRendering (\d+) \/ (\d+) samples\b/;
const SAVED = /^Saved: '(.*)'\s*$/;
const TIME = /^\s*Time: ([\d:.]+)(?: \(Saving: ([\d:.]+)\))?\s*$/;
const TRACEBACK = /^(?:Error: Python: )?Traceback \(most recent call last\):/;
const PYTHON_EXCEPTION = /^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): (.*)$/;
const VERSION = /^Blender (\d+)\.(\d+)(?:\.(\d+))?(?:\s|$)/;
const CRASH = /^Writing: (.*\.crash\.txt)\s*$/;
const MARKER = /^SKYFARM_(FRAME_START|FRAME_DONE|FRAME_SKIPPED|FRAME_FAILED|PROBE)(?: (.*))?$/;

/** `00:01.23`, `01:02:03.45` or `12.5` → seconds. */
export function parseBlenderTimecode(text: string): number | null {
  const parts = text.split(':').map(Number);
  if (parts.length === 0 || parts.length > 3 || parts.some((part) => !Number.isFinite(part))) return null;
  return parts.reduce((total, part) => total * 60 + part, 0);
}

function parseStatusLine(frame: number, rest: string): BlenderEvent {
  // rest: ` | Time:00:00.10 | Remaining:00:00.01 | Mem:0.84M, Peak:0.84M | Scene, ViewLayer | Sample 1/4`
  // (5.x: ` | Remaining: 00:00.01 | Mem: 1M | Sample 1/4`)
  const fields = rest
    .split(' | ')
    .map((field) => field.trim().replace(/^\|\s*/, ''))
    .filter((field) => field !== '');
  const timeField = fields.find((field) => field.startsWith('Time:'));
  const elapsedSeconds = timeField ? parseBlenderTimecode(timeField.slice('Time:'.length)) : null;
  // Cycles: `Scene, ViewLayer | Updating Objects | …`; Eevee: `Syncing Cube`.
  const status = fields.filter((field) => !/^(?:Time|Remaining|Mem):/.test(field)).join(' | ');
  const cycles = CYCLES_SAMPLES.exec(status);
  if (cycles)
    return { type: 'samples', frame, done: Number(cycles[1]), total: Number(cycles[2]), engine: 'cycles' };
  const eevee = EEVEE_SAMPLES.exec(status);
  if (eevee)
    return { type: 'samples', frame, done: Number(eevee[1]), total: Number(eevee[2]), engine: 'eevee' };
  return { type: 'frame', frame, elapsedSeconds, status };
}

function parseMarker(kind: string, rest: string): BlenderEvent | null {
  if (kind === 'PROBE') {
    try {
      return { type: 'probe', data: JSON.parse(rest) as unknown };
    } catch {
      return null;
    }
  }
  const match = /^(-?\d+)(?: (.*))?$/.exec(rest);
  if (!match) return null;
  const frame = Number(match[1]);
  const tail = match[2] ?? '';
  switch (kind) {
    case 'FRAME_START':
      return { type: 'frameStart', frame };
    case 'FRAME_SKIPPED':
      return tail ? { type: 'frameSkipped', frame, path: tail } : null;
    case 'FRAME_FAILED':
      return { type: 'frameFailed', frame, message: tail || 'unknown error' };
    case 'FRAME_DONE': {
      const done = /^([\d.]+) (.+)$/.exec(tail);
      return done ? { type: 'frameDone', frame, seconds: Number(done[1]), path: done[2]! } : null;
    }
    default:
      return null;
  }
}

/** A 5.x log line's message, by its level. */
function parseLogMessage(level: string | undefined, message: string): BlenderEvent | null {
  const text = message.trim();
  if (level === 'ERROR' || level === 'FATAL') {
    if (/^(?:Python: )?Traceback \(most recent call last\):/.test(text)) return { type: 'traceback' };
    return { type: 'error', source: 'blender', message: text };
  }
  if (level === 'WARNING') return { type: 'warning', message: text };
  const status = LOG_STATUS_LINE.exec(text);
  if (status) return parseStatusLine(Number(status[1]), status[2]!);
  const saved = SAVED.exec(text);
  if (saved) return { type: 'saved', path: saved[1]! };
  return parseTime(text);
}

function parseTime(text: string): BlenderEvent | null {
  const time = TIME.exec(text);
  if (!time) return null;
  const seconds = parseBlenderTimecode(time[1]!);
  if (seconds === null) return null;
  return { type: 'time', seconds, savingSeconds: time[2] ? parseBlenderTimecode(time[2]) : null };
}

/**
 * The text of an error event as one line for a failure message (`Error: …` for Blender's own, as
 * 3.4 prints it; the exception line for Python's), without 5.x's log prefix.
 */
export function blenderErrorText(event: Extract<BlenderEvent, { type: 'error' }>): string {
  return event.source === 'blender' ? `Error: ${event.message}` : event.message;
}

/** Parses one line of Blender output (without its newline); null for lines that carry nothing. */
export function parseBlenderLine(line: string): BlenderEvent | null {
  const text = line.replace(/\r$/, '');
  const marker = MARKER.exec(text);
  if (marker) return parseMarker(marker[1]!, marker[2] ?? '');
  const status = STATUS_LINE.exec(text);
  if (status) return parseStatusLine(Number(status[1]), status[2]!);
  const logged = LOG_LINE.exec(text);
  if (logged) return parseLogMessage(logged[1], logged[2]!);
  const saved = SAVED.exec(text);
  if (saved) return { type: 'saved', path: saved[1]! };
  const time = parseTime(text);
  if (time) return time;
  if (TRACEBACK.test(text)) return { type: 'traceback' };
  if (text.startsWith('Error: ')) return { type: 'error', source: 'blender', message: text.slice(7).trim() };
  if (text.startsWith('Warning: ')) return { type: 'warning', message: text.slice(9).trim() };
  const exception = PYTHON_EXCEPTION.exec(text);
  if (exception) return { type: 'error', source: 'python', message: text.trim() };
  const pythonWarning = PYTHON_WARNING.exec(text);
  if (pythonWarning) return { type: 'warning', message: `${pythonWarning[1]!}: ${pythonWarning[2]!.trim()}` };
  const crash = CRASH.exec(text);
  if (crash) return { type: 'crash', reportPath: crash[1]! };
  if (text === 'Blender quit') return { type: 'quit' };
  const version = VERSION.exec(text);
  if (version) {
    return { type: 'version', version: [Number(version[1]), Number(version[2]), Number(version[3] ?? 0)] };
  }
  return null;
}
