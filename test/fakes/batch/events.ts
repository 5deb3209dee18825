// The slice of Amazon EventBridge the Batch pipeline relies on, for the fake Batch endpoint: event
// patterns (exact values, prefix, suffix, anything-but, exists, numeric equality) and the input
// transformer of a Batch target (`InputPathsMap` + `InputTemplate` → SubmitJob parameters).

export type Pattern = { [key: string]: Pattern | unknown[] };

function matchValue(rule: unknown, value: unknown, present: boolean): boolean {
  if (rule !== null && typeof rule === 'object' && !Array.isArray(rule)) {
    const r = rule as Record<string, unknown>;
    if ('exists' in r) return r['exists'] === present;
    if (!present) return false;
    if ('prefix' in r) return typeof value === 'string' && value.startsWith(String(r['prefix']));
    if ('suffix' in r) return typeof value === 'string' && value.endsWith(String(r['suffix']));
    if ('anything-but' in r) {
      const but = r['anything-but'];
      const list = Array.isArray(but) ? but : [but];
      return !list.some((item) => item === value);
    }
    if ('wildcard' in r) {
      const regex = new RegExp(
        '^' +
          String(r['wildcard'])
            .split('*')
            .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
            .join('.*') +
          '$',
      );
      return typeof value === 'string' && regex.test(value);
    }
    throw new Error(`fake EventBridge: unsupported pattern operator ${JSON.stringify(rule)}`);
  }
  if (!present) return false;
  if (Array.isArray(value)) return value.some((item) => item === rule);
  return rule === value;
}

/** Does `event` match the EventBridge `pattern`? (Each listed value is an alternative; fields AND.) */
export function matchesPattern(pattern: Pattern, event: unknown): boolean {
  for (const [key, rule] of Object.entries(pattern)) {
    const container = event !== null && typeof event === 'object' ? (event as Record<string, unknown>) : {};
    const present = Object.prototype.hasOwnProperty.call(container, key) && container[key] !== undefined;
    const value = present ? container[key] : undefined;
    if (Array.isArray(rule)) {
      if (!rule.some((alternative) => matchValue(alternative, value, present))) return false;
    } else if (rule !== null && typeof rule === 'object') {
      // A nested pattern: absent objects only match nested `exists: false` leaves.
      if (!matchesPattern(rule as Pattern, present ? value : {})) return false;
    } else {
      throw new Error(`fake EventBridge: pattern values must be arrays or objects (${key})`);
    }
  }
  return true;
}

/** `$.detail.parameters.jobId` (dot notation only, as EventBridge requires). */
export function jsonPath(event: unknown, path: string): unknown {
  if (path === '$') return event;
  if (!path.startsWith('$.')) throw new Error(`fake EventBridge: bad JSON path ${path}`);
  let value: unknown = event;
  for (const part of path.slice(2).split('.')) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/**
 * Applies an input transformer. Placeholders outside quotes receive the JSON value (strings quoted
 * and escaped); inside quotes the raw text. A path that matches nothing becomes null / empty.
 */
export function transformInput(
  event: unknown,
  transformer: { InputPathsMap?: Record<string, string>; InputTemplate: string },
): string {
  const values = new Map<string, unknown>();
  for (const [name, path] of Object.entries(transformer.InputPathsMap ?? {}))
    values.set(name, jsonPath(event, path));
  let out = '';
  let inString = false;
  const template = transformer.InputTemplate;
  for (let i = 0; i < template.length; i++) {
    const ch = template[i]!;
    if (ch === '\\' && inString) {
      out += ch + (template[i + 1] ?? '');
      i++;
      continue;
    }
    if (ch === '"') inString = !inString;
    if (ch === '<') {
      const end = template.indexOf('>', i);
      const name = end > i ? template.slice(i + 1, end) : '';
      if (values.has(name)) {
        const value = values.get(name);
        if (inString)
          out += JSON.stringify(value === undefined || value === null ? '' : String(value)).slice(1, -1);
        else out += value === undefined ? 'null' : JSON.stringify(value);
        i = end;
        continue;
      }
    }
    out += ch;
  }
  return out;
}
