import { subtreeEnd, type DepartmentCounts, type DepartmentRecord, type PathRange } from '../store/types.js';

/**
 * The department tree, held in memory (thousands of nodes at most) and rebuilt after each change.
 * It turns a user's scope (department ids) into the path ranges every query is limited to.
 */
export class DepartmentTree {
  private readonly byId = new Map<string, DepartmentRecord>();
  private readonly children = new Map<string | null, DepartmentRecord[]>();

  constructor(records: DepartmentRecord[]) {
    for (const d of records) {
      this.byId.set(d.id, d);
      const siblings = this.children.get(d.parentId) ?? [];
      siblings.push(d);
      this.children.set(d.parentId, siblings);
    }
  }

  get(id: string): DepartmentRecord | undefined {
    return this.byId.get(id);
  }

  get size(): number {
    return this.byId.size;
  }

  childrenOf(id: string | null): DepartmentRecord[] {
    return this.children.get(id) ?? [];
  }

  /** The subtrees a set of department ids covers, nested ones folded into their ancestors, sorted. */
  rangesFor(ids: Iterable<string>): PathRange[] {
    const paths = [...new Set([...ids].map((id) => this.byId.get(id)?.path).filter((p): p is string => !!p))].sort();
    const roots: string[] = [];
    for (const p of paths) if (!roots.some((r) => p.startsWith(r))) roots.push(p);
    return roots.map((p) => [p, subtreeEnd(p)] as const);
  }

  /** The path of the nearest department containing all of `ids` (null when none is known). */
  commonPath(ids: Iterable<string>): string | null {
    const paths = [...ids].map((id) => this.byId.get(id)?.path).filter((p): p is string => !!p);
    if (!paths.length) return null;
    let common = paths[0]!;
    for (const p of paths) while (!p.startsWith(common)) common = common.slice(0, common.slice(0, -1).lastIndexOf('/') + 1);
    return common.length > 1 ? common : null;
  }

  /** Whether a department lies inside the given ranges. */
  within(id: string, ranges: PathRange[]): boolean {
    const path = this.byId.get(id)?.path;
    return !!path && ranges.some(([from, to]) => path >= from && path < to);
  }

  /** The part of `scope` below department `id`: the whole subtree when it is in scope, else the scope roots under it. */
  narrow(scope: PathRange[], id: string): PathRange[] {
    const path = this.byId.get(id)?.path;
    if (!path) return [];
    const end = subtreeEnd(path);
    if (scope.some(([from, to]) => path >= from && path < to)) return [[path, end]];
    return scope.filter(([from]) => from >= path && from < end);
  }

  /** Departments visible in `scope`, as a forest with own and rolled-up counts. */
  forest(scope: PathRange[], counts: Map<string, DepartmentCounts>): DepartmentNode[] {
    const build = (d: DepartmentRecord): DepartmentNode => {
      const kids = this.childrenOf(d.id).map(build);
      const own = counts.get(d.id) ?? { total: 0, online: 0, offline: 0 };
      const sum = { ...own };
      for (const k of kids) {
        sum.total += k.counts.total;
        sum.online += k.counts.online;
        sum.offline += k.counts.offline;
      }
      return { id: d.id, name: d.name, level: d.level, parentId: d.parentId, ownCounts: own, counts: sum, children: kids };
    };
    return scope
      .map(([from]) => [...this.byId.values()].find((d) => d.path === from))
      .filter((d): d is DepartmentRecord => !!d)
      .map(build);
  }
}

export interface DepartmentNode {
  id: string;
  name: string;
  level: DepartmentRecord['level'];
  parentId: string | null;
  ownCounts: DepartmentCounts;
  counts: DepartmentCounts;
  children: DepartmentNode[];
}
