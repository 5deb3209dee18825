// The daemon's database with every statement that reads rows of file_hashes or known_blobs counted
// by its SQL (COUNT(*) statements aside): what an upload asks SQLite.
import type { Statement } from 'better-sqlite3';
import type { Db } from '../../daemon/src/db/database.js';

/** The database, with every statement reading rows of file_hashes or known_blobs counted by its SQL. */
export function countingDb(db: Db): { db: Db; reads: Map<string, number> } {
  const reads = new Map<string, number>();
  const counted = (sql: string, statement: Statement) =>
    new Proxy(statement, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if ((property === 'get' || property === 'all') && typeof value === 'function') {
          return (...args: unknown[]) => {
            reads.set(sql, (reads.get(sql) ?? 0) + 1);
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        }
        return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
      },
    });
  const proxy = new Proxy(db, {
    get(target, property, receiver) {
      if (property === 'prepare') {
        return (sql: string) => {
          const statement = target.prepare(sql);
          return /^\s*SELECT (?!COUNT)[\s\S]*FROM (file_hashes|known_blobs)/.test(sql)
            ? counted(sql, statement)
            : statement;
        };
      }
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
    },
  });
  return { db: proxy, reads };
}
