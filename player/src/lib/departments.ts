import { api } from './api.js';

export interface DepartmentNode {
  id: string;
  name: string;
  level: string;
  parentId: string | null;
  ownCounts: { total: number; online: number; offline: number };
  counts: { total: number; online: number; offline: number };
  children: DepartmentNode[];
}

/** The departments the user sees, as a tree with camera counts (own and rolled up). */
export async function departmentForest(): Promise<DepartmentNode[]> {
  return (await api<{ items: DepartmentNode[] }>('GET', '/api/departments')).items;
}

export function departmentNames(forest: DepartmentNode[]): Map<string, string> {
  const names = new Map<string, string>();
  const walk = (nodes: DepartmentNode[]) => {
    for (const n of nodes) {
      names.set(n.id, n.name);
      walk(n.children);
    }
  };
  walk(forest);
  return names;
}
