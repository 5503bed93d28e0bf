/**
 * What the admin sections share: the section contract, forms whose gateway errors land at the field,
 * a confirmation dialog, department pickers built from the tree, and small formatting helpers.
 */
import { ApiError, type Session } from '../lib/api.js';
import type { DepartmentNode } from '../lib/departments.js';
import { issueText, errorText as sharedErrorText } from '../lib/errors.js';
import { h, type Child } from '../lib/dom.js';
import { addStrings, t } from '../lib/i18n.js';

addStrings({
  'admin.confirm': ['Please confirm', '请确认'],
  'admin.fieldProblem': ['{field}: {message}', '{field}：{message}'],
  'admin.networkDown': ['The gateway cannot be reached; nothing was changed.', '无法连接网关，未做任何更改。'],
  'admin.noDepartments': ['No departments are in your scope.', '您的管辖范围内没有部门。'],
  'admin.shown': ['{n} shown', '已显示 {n} 条'],
  'admin.level.national': ['National', '国家'],
  'admin.level.province': ['Province', '省'],
  'admin.level.city': ['City', '市'],
  'admin.level.county': ['County', '区县'],
  'admin.level.township': ['Township', '乡镇街道'],
  'admin.level.site': ['Site', '点位'],
});

/** The levels of the department tree, top first (the gateway's LEVELS). */
export const LEVELS = ['national', 'province', 'city', 'county', 'township', 'site'] as const;

export interface AdminContext {
  session: Session;
  /** The department forest in the user's scope; fetched once and shared until a section changes it. */
  forest(): Promise<DepartmentNode[]>;
  /** Departments or camera counts changed: the next `forest()` asks the gateway again. */
  forestChanged(): void;
}

export interface Section {
  id: string;
  /** i18n key of the navigation label and heading. */
  label: string;
  /** Whether the signed-in user's permissions let them use this section at all. */
  allowed(): boolean;
  /** Fills `el`; returns what to stop (timers, requests) when the user leaves the section. */
  mount(el: HTMLElement, ctx: AdminContext): (() => void) | void;
}

export interface FlatDepartment {
  node: DepartmentNode;
  depth: number;
}

/** The forest in display order (parents before children), with each node's depth. */
export function flatten(forest: DepartmentNode[]): FlatDepartment[] {
  const out: FlatDepartment[] = [];
  const walk = (nodes: DepartmentNode[], depth: number) => {
    for (const node of nodes) {
      out.push({ node, depth });
      walk(node.children, depth + 1);
    }
  };
  walk(forest, 0);
  return out;
}

/** Options for a department <select>, indented by depth so the tree reads in a flat list. */
/**
 * Which departments of a tree show, given the branches folded away. A big tree (more than 60
 * departments) starts folded below its second level, so a province's admin sees cities and counties first.
 */
export class FoldedTree {
  readonly collapsed = new Set<string>();
  private seeded = false;

  visible(forest: DepartmentNode[]): Array<FlatDepartment & { folded: boolean }> {
    const flat = flatten(forest);
    if (!this.seeded) {
      this.seeded = true;
      if (flat.length > 60) for (const { node, depth } of flat) if (depth >= 2 && node.children.length) this.collapsed.add(node.id);
    }
    const out: Array<FlatDepartment & { folded: boolean }> = [];
    const hiddenBelow: number[] = [];
    for (const row of flat) {
      while (hiddenBelow.length && hiddenBelow[hiddenBelow.length - 1]! >= row.depth) hiddenBelow.pop();
      if (hiddenBelow.length) continue;
      const folded = this.collapsed.has(row.node.id);
      if (folded) hiddenBelow.push(row.depth);
      out.push({ ...row, folded });
    }
    return out;
  }

  toggle(id: string): void {
    if (!this.collapsed.delete(id)) this.collapsed.add(id);
  }
}

export function departmentOptions(forest: DepartmentNode[], selected: string | null, blank?: string): HTMLOptionElement[] {
  const options = flatten(forest).map(({ node, depth }) =>
    h('option', { value: node.id, selected: node.id === selected }, `${'\u00a0\u00a0\u00a0'.repeat(depth)}${node.name}`),
  );
  return blank === undefined ? options : [h('option', { value: '', selected: !selected }, blank), ...options];
}

export const levelLabel = (level: string) => t(`admin.level.${level}`);

/** The shared wording, but for an unreachable gateway: an admin needs to know the change was not made. */
export function errorText(err: unknown): string {
  return err instanceof ApiError && err.status === 0 ? t('admin.networkDown') : sharedErrorText(err);
}

export const isAbort = (err: unknown) => (err as Error)?.name === 'AbortError';

/**
 * A labelled control with the place for its error. `data-field` carries the gateway's field name, so
 * an issue `{field, message}` finds its input; the message is tied to it with aria-describedby.
 */
export function field(formId: string, name: string, label: string, control: HTMLElement, hint?: Child): HTMLElement {
  const id = `${formId}-${name}`;
  const errorId = `${id}-error`;
  const isGroup = control.tagName === 'FIELDSET' || control.getAttribute('role') === 'group';
  if (!isGroup) control.id = id;
  else control.setAttribute('aria-labelledby', `${id}-label`);
  control.setAttribute('aria-describedby', errorId);
  return h(
    'div',
    { class: 'field', dataset: { field: name } },
    isGroup ? h('span', { class: 'field-label', id: `${id}-label` }, label) : h('label', { for: id, class: 'field-label' }, label),
    control,
    hint ? h('div', { class: 'field-hint' }, hint) : null,
    h('div', { class: 'field-error', id: errorId, role: 'alert' }),
  );
}

/**
 * Shows a gateway error on a form: each issue under its field (aria-invalid on the control), and a
 * form-level message for the rest. A coded error without issues whose message starts with a field
 * name ("username: … is taken") is put at that field too.
 */
export class FormErrors {
  constructor(
    private readonly form: HTMLElement,
    private readonly general: HTMLElement,
  ) {}

  clear(): void {
    this.general.textContent = '';
    for (const el of this.form.querySelectorAll('[aria-invalid="true"]')) el.removeAttribute('aria-invalid');
    for (const el of this.form.querySelectorAll('.field-error')) el.textContent = '';
  }

  /** Shows `err`; returns true when at least one message went to a field. */
  show(err: unknown): boolean {
    this.clear();
    // Each problem as the page words it: a refused field by its rule, a field-named refusal by its code.
    let problems: { field: string; text: string }[] = err instanceof ApiError ? err.issues.map((i) => ({ field: i.field, text: issueText(i) })) : [];
    if (err instanceof ApiError && !problems.length) {
      const m = /^([A-Za-z]+): (.+)$/s.exec(err.message);
      if (m && this.wrapper(m[1]!)) problems = [{ field: m[1]!, text: errorText(err) }];
    }
    if (!problems.length) {
      this.general.textContent = errorText(err);
      return false;
    }
    const byField = new Map<string, string[]>();
    const elsewhere: string[] = [];
    for (const { field, text } of problems) {
      if (this.wrapper(field)) byField.set(field, [...(byField.get(field) ?? []), text]);
      else elsewhere.push(t('admin.fieldProblem', { field, message: text }));
    }
    for (const [name, messages] of byField) {
      const wrapper = this.wrapper(name)!;
      wrapper.querySelector('.field-error')!.textContent = messages.join('; ');
      // The field's own controls (and their group), not helpers beside them such as a filter box.
      const named = wrapper.querySelectorAll(`fieldset, [name="${CSS.escape(name)}"]`);
      for (const control of named.length ? named : wrapper.querySelectorAll('input, select, textarea')) control.setAttribute('aria-invalid', 'true');
    }
    this.general.textContent = elsewhere.join('\n');
    // The first bad field gets the focus, so a keyboard user lands where the fix is needed.
    const first = this.form.querySelector<HTMLElement>('[aria-invalid="true"]:not(fieldset)');
    first?.focus();
    return byField.size > 0;
  }

  private wrapper(name: string): HTMLElement | null {
    return this.form.querySelector<HTMLElement>(`[data-field="${CSS.escape(name)}"]`);
  }
}

/** A modal dialog around `content`, removed from the page when it closes. */
export function modal(title: string, content: HTMLElement, className = ''): HTMLDialogElement {
  const dialog = h('dialog', { class: `admin-dialog ${className}`, 'aria-label': title }, h('h2', null, title), content);
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

/** A table's header: each column's label is the string `<prefix>.col.<key>`. */
export function tableHead(prefix: string, keys: readonly string[]): HTMLTableSectionElement {
  return h('thead', null, h('tr', null, keys.map((c) => h('th', { scope: 'col' }, t(`${prefix}.col.${c}`)))));
}

export interface FormDialogOptions<T> {
  title: string;
  formId: string;
  /** The form's own class beside admin-form, and the dialog's (e.g. 'wide'). */
  formClass?: string;
  dialogClass?: string;
  fields: Child[];
  /** Sends the form; the dialog closes with its result. */
  submit(): Promise<T>;
  /** Handles an error itself (returns true), e.g. a conflicting edit; others go to their fields. */
  onError?(err: unknown, general: HTMLElement): boolean;
}

/**
 * A form in a modal dialog, the way every admin form behaves: Save is disabled while the gateway
 * answers, its errors land under the fields they name, and the dialog closes only on success.
 * `done` resolves with the result, or null when cancelled.
 */
export function formDialog<T>(o: FormDialogOptions<T>): { form: HTMLFormElement; done: Promise<T | null> } {
  const general = h('div', { class: 'form-error', role: 'alert' });
  const save = h('button', { type: 'submit', class: 'primary' }, t('common.save'));
  const cancel = h('button', { type: 'button' }, t('common.cancel'));
  const form = h(
    'form',
    { class: `admin-form ${o.formClass ?? ''}`, id: o.formId, novalidate: true },
    h('div', { class: 'form-grid' }, o.fields),
    general,
    h('div', { class: 'dialog-actions' }, cancel, save),
  );
  const errors = new FormErrors(form, general);
  const dialog = modal(o.title, form, o.dialogClass);
  const done = new Promise<T | null>((resolve) => {
    let result: T | null = null;
    dialog.addEventListener('close', () => resolve(result));
    cancel.addEventListener('click', () => dialog.close());
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      errors.clear();
      save.disabled = true;
      try {
        result = await o.submit();
        dialog.close();
      } catch (err) {
        if (!o.onError?.(err, general)) errors.show(err);
      } finally {
        save.disabled = false;
      }
    });
  });
  return { form, done };
}

/** Asks before something that cannot be undone; resolves true only on the confirming button. */
export function confirmDialog(message: string, confirmLabel: string): Promise<boolean> {
  return new Promise((resolve) => {
    let answer = false;
    const ok = h('button', { type: 'button', class: 'danger', dataset: { confirm: 'yes' } }, confirmLabel);
    const cancel = h('button', { type: 'button' }, t('common.cancel'));
    const dialog = modal(t('admin.confirm'), h('div', null, h('p', { class: 'confirm-message' }, message), h('div', { class: 'dialog-actions' }, cancel, ok)), 'confirm');
    ok.addEventListener('click', () => {
      answer = true;
      dialog.close();
    });
    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => resolve(answer));
    // The safe choice has the focus: Enter on a stray keypress must not delete anything.
    cancel.focus();
  });
}

/** A "load more" row: the count shown so far and the button, or that there is no more. */
export function pagerStatus(shown: number, more: boolean, loading: boolean, onMore: () => void): HTMLElement {
  return h(
    'div',
    { class: 'pager' },
    h('span', { class: 'muted' }, t('admin.shown', { n: shown })),
    more ? h('button', { type: 'button', class: 'load-more', disabled: loading, onclick: onMore }, loading ? t('common.loading') : t('common.more')) : null,
  );
}

/** Milliseconds as h:mm:ss (uptime of a stream). */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const hms = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  return `${hms[0]}:${String(hms[1]).padStart(2, '0')}:${String(hms[2]).padStart(2, '0')}`;
}

/** Offers text the page holds (a template, a report, an export fetched with the bearer token) as a file. */
export function download(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: name, style: 'display:none' });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

