import { readFileSync } from 'node:fs';
import { findProjectRoot } from './config/project-root.js';

export const DAEMON_VERSION: string = (
  JSON.parse(readFileSync(`${findProjectRoot()}/package.json`, 'utf8')) as { version: string }
).version;
