/** Departments on PostgreSQL: a move rewrites the paths of the subtree and of everything filed under it, in one transaction. */
import { StoreConflict, subtreeEnd, type DepartmentRecord, type DepartmentRepo } from '../types.js';
import type { PgDb } from './db.js';
import { toDepartment, type Row } from '../rows.js';


/** Every table that files rows under a department path (the column is dept_path but in departments). */
const PATH_COLUMNS: [table: string, column: string][] = [
  ['departments', 'path'],
  ['sources', 'dept_path'],
  ['walls', 'dept_path'],
  ['vehicles', 'dept_path'],
  ['alarms', 'dept_path'],
  ['vehicle_rules', 'dept_path'],
  ['gb_devices', 'dept_path'],
  ['gb_admission_rules', 'dept_path'],
  ['gb_refusals', 'dept_path'],
  ['jt_refusals', 'dept_path'],
];

/** The tables whose rows keep a department from being deleted. */
const DEPARTMENT_USERS = ['sources', 'walls', 'vehicles', 'vehicle_rules', 'gb_devices', 'gb_admission_rules'];

export class PgDepartments implements DepartmentRepo {
  constructor(private readonly db: PgDb) {}

  async all() {
    return (await this.db.query<Row>(`SELECT * FROM departments ORDER BY path`)).map(toDepartment);
  }

  async create(dep: Omit<DepartmentRecord, 'createdAt' | 'updatedAt'>, now: number) {
    try {
      await this.db.exec(
        `INSERT INTO departments (id, name, parent_id, level, path, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)`,
        [dep.id, dep.name, dep.parentId, dep.level, dep.path, now],
      );
    } catch (err) {
      // SQLite refuses an unknown parent as a constraint too.
      if (err instanceof StoreConflict || (err as { code?: string }).code === '23503') throw new StoreConflict(`department ${dep.id} exists`);
      throw err;
    }
    return { ...dep, createdAt: now, updatedAt: now };
  }

  async update(id: string, changes: { name?: string; parentId?: string | null; level?: DepartmentRecord['level']; path?: string }, now: number) {
    return this.db.tx(async (tx) => {
      const current = await tx.one<Row>(`SELECT * FROM departments WHERE id = $1 FOR UPDATE`, [id]);
      if (!current) throw new StoreConflict(`department ${id} does not exist`);
      const dep = toDepartment(current);
      if (changes.path && changes.path !== dep.path) {
        const [from, to] = [dep.path, subtreeEnd(dep.path)];
        for (const [table, column] of PATH_COLUMNS) {
          await tx.exec(`UPDATE ${table} SET ${column} = $1 || substr(${column}, $2) WHERE ${column} >= $3 AND ${column} < $4`, [
            changes.path,
            from.length + 1,
            from,
            to,
          ]);
        }
      }
      const next = { ...dep, ...changes, updatedAt: now };
      await tx.exec(`UPDATE departments SET name = $1, parent_id = $2, level = $3, updated_at = $4 WHERE id = $5`, [next.name, next.parentId, next.level, now, id]);
      return next;
    });
  }

  async delete(id: string) {
    return this.db.tx(async (tx) => {
      // Locked first, so a source created under it meanwhile waits (its foreign key check) and then fails.
      if (!(await tx.one(`SELECT 1 FROM departments WHERE id = $1 FOR UPDATE`, [id]))) return false;
      if (await tx.one(`SELECT 1 FROM departments WHERE parent_id = $1 LIMIT 1`, [id])) return false;
      for (const table of DEPARTMENT_USERS) {
        if (await tx.one(`SELECT 1 FROM ${table} WHERE department_id = $1 LIMIT 1`, [id])) return false;
      }
      return (await tx.exec(`DELETE FROM departments WHERE id = $1`, [id])) > 0;
    });
  }
}
