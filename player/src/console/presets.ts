/**
 * Presets (a saved wall: layouts, contents, tours) and emergency plans (预案: presets with a priority
 * that override operators' locks when activated). A plan in force is announced in a banner above the
 * miniature with the way back (revert). Deleting asks for a second click instead of a dialog.
 */
import { can } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { addStrings, formatTime, t } from '../lib/i18n.js';
import type { ConsoleContext, Presets } from './context.js';
import { explain, fieldsAtFault } from './tile-actions.js';

addStrings({
  'preset.title': ['Presets', '预置'],
  'preset.name': ['Preset name', '预置名称'],
  'preset.save': ['Save the wall as it is', '保存当前大屏'],
  'preset.recall': ['Recall', '调用'],
  'preset.none': ['No preset saved.', '暂无预置。'],
  'preset.saved': ['Preset "{name}" saved.', '预置“{name}”已保存。'],
  'preset.recalled': ['Preset "{name}" recalled.', '已调用预置“{name}”。'],
  'preset.deleted': ['"{name}" deleted.', '“{name}”已删除。'],
  'preset.confirmDelete': ['Click again to delete', '再次点击确认删除'],
  'preset.needName': ['Give it a name.', '请输入名称。'],
  'plan.title': ['Emergency plans', '应急预案'],
  'plan.none': ['No plan saved.', '暂无预案。'],
  'plan.name': ['Plan name', '预案名称'],
  'plan.priority': ['Priority (1–100)', '优先级（1–100）'],
  'plan.badPriority': ['A whole number from 1 to 100.', '请输入 1 到 100 的整数。'],
  'plan.save': ['Save the wall as a plan', '将当前大屏存为预案'],
  'plan.activate': ['Activate', '启动'],
  'plan.revert': ['Revert', '撤销预案'],
  'plan.item': ['{name} · priority {priority}', '{name} · 优先级 {priority}'],
  'plan.banner': ['Emergency plan in force: {name} (priority {priority}), activated by {by} at {at}.', '应急预案执行中：{name}（优先级 {priority}），{by} 于 {at} 启动。'],
  'plan.activated': ['Plan "{name}" activated.', '预案“{name}”已启动。'],
  'plan.reverted': ['The wall is back as it was before the plan.', '大屏已恢复到启动预案前的状态。'],
});

const CONFIRM_MS = 4_000;

export class PresetPanel {
  readonly el: HTMLElement;
  /** Shown above the miniature while a plan is in force. */
  readonly banner: HTMLElement;
  private bannerKey = '';
  private readonly presetList: HTMLUListElement;
  private readonly planList: HTMLUListElement;

  constructor(private readonly ctx: ConsoleContext) {
    const drive = can('walls:drive');
    const manage = can('walls:manage');
    this.presetList = h('ul', { class: 'preset-list', dataset: { role: 'presets' } });
    this.planList = h('ul', { class: 'preset-list', dataset: { role: 'plans' } });
    this.banner = h('div', { class: 'plan-banner', hidden: true, role: 'alert', dataset: { role: 'plan-banner' } });
    this.el = h(
      'section',
      { class: 'panel preset-panel' },
      h('h2', null, t('preset.title')),
      drive ? this.presetForm() : null,
      this.presetList,
      h('h2', null, t('plan.title')),
      manage ? this.planForm() : null,
      this.planList,
    );
    ctx.presetsChanged.on((p) => this.renderLists(p));
    ctx.wallChanged.on(({ wall }) => this.renderBanner(wall.plan));
    ctx.wallCleared.on(() => {
      this.renderLists([]);
      this.renderBanner(null);
    });
  }

  private presetForm(): HTMLElement {
    const name = h('input', { maxlength: '100', placeholder: t('preset.name'), 'aria-label': t('preset.name'), dataset: { role: 'preset-name' } });
    const error = h('div', { class: 'field-error' });
    const save = h('button', { dataset: { action: 'preset-save' } }, t('preset.save'));
    const submit = async () => {
      error.textContent = '';
      const wall = this.ctx.wall();
      if (!wall) return;
      const value = name.value.trim();
      if (!value) return void (error.textContent = t('preset.needName'));
      save.disabled = true;
      try {
        await this.ctx.conn.request('preset.save', { wallId: wall.id, name: value });
        name.value = '';
        this.ctx.notify(t('preset.saved', { name: value }), 'ok');
      } catch (e) {
        error.textContent = fieldsAtFault(e).get('name') ?? explain(e);
      } finally {
        save.disabled = false;
      }
    };
    save.addEventListener('click', () => void submit());
    name.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') void submit();
    });
    return h('div', { class: 'inline-form' }, name, save, error);
  }

  private planForm(): HTMLElement {
    const name = h('input', { maxlength: '100', placeholder: t('plan.name'), 'aria-label': t('plan.name'), dataset: { role: 'plan-name' } });
    const priority = h('input', { type: 'number', min: '1', max: '100', step: '1', value: '50', 'aria-label': t('plan.priority'), title: t('plan.priority'), class: 'narrow', dataset: { role: 'plan-priority' } });
    const error = h('div', { class: 'field-error' });
    const save = h('button', { dataset: { action: 'plan-save' } }, t('plan.save'));
    save.addEventListener('click', async () => {
      error.textContent = '';
      priority.removeAttribute('aria-invalid');
      const wall = this.ctx.wall();
      if (!wall) return;
      const value = name.value.trim();
      const p = Number(priority.value);
      if (!value) return void (error.textContent = t('preset.needName'));
      if (!Number.isInteger(p) || p < 1 || p > 100) {
        priority.setAttribute('aria-invalid', 'true');
        return void (error.textContent = t('plan.badPriority'));
      }
      save.disabled = true;
      try {
        await this.ctx.conn.request('plan.save', { wallId: wall.id, name: value, priority: p });
        name.value = '';
        this.ctx.notify(t('preset.saved', { name: value }), 'ok');
      } catch (e) {
        error.textContent = explain(e);
      } finally {
        save.disabled = false;
      }
    });
    return h('div', { class: 'inline-form' }, name, priority, save, error);
  }

  private renderLists(presets: Presets) {
    const drive = can('walls:drive');
    const manage = can('walls:manage');
    const own = presets.filter((p) => p.kind === 'preset').sort((a, b) => a.name.localeCompare(b.name));
    const plans = presets.filter((p) => p.kind === 'plan').sort((a, b) => (b.priority ?? 0) - (a.priority ?? 0) || a.name.localeCompare(b.name));
    this.presetList.replaceChildren(
      ...(own.length
        ? own.map((p) =>
            h(
              'li',
              { dataset: { preset: p.id } },
              h('span', { class: 'preset-name' }, p.name),
              drive ? this.actionButton('preset-recall', t('preset.recall'), () => this.recall(p)) : null,
              drive ? this.deleteButton('preset-delete', () => this.remove('preset.delete', p)) : null,
            ),
          )
        : [h('li', { class: 'muted' }, t('preset.none'))]),
    );
    this.planList.replaceChildren(
      ...(plans.length
        ? plans.map((p) =>
            h(
              'li',
              { dataset: { plan: p.id } },
              h('span', { class: 'preset-name' }, t('plan.item', { name: p.name, priority: p.priority ?? '' })),
              drive ? this.actionButton('plan-activate', t('plan.activate'), () => this.activate(p), 'danger') : null,
              manage ? this.deleteButton('plan-delete', () => this.remove('plan.delete', p)) : null,
            ),
          )
        : [h('li', { class: 'muted' }, t('plan.none'))]),
    );
  }

  private renderBanner(plan: { planId?: string; name: string; priority: number; activatedBy: string; at: number } | null) {
    // Rebuilt only when the plan changes: a tour rotation must not swap the Revert button under a click.
    const key = plan ? `${plan.planId ?? plan.name}/${plan.activatedBy}/${plan.at}` : '';
    if (key === this.bannerKey) return;
    this.bannerKey = key;
    this.banner.hidden = !plan;
    if (!plan) return this.banner.replaceChildren();
    const revert = this.actionButton('plan-revert', t('plan.revert'), async () => {
      const wall = this.ctx.wall();
      if (!wall) return;
      await this.ctx.conn.request('plan.revert', { wallId: wall.id });
      this.ctx.notify(t('plan.reverted'), 'ok');
    });
    replace(this.banner, h('span', null, t('plan.banner', { name: plan.name, priority: plan.priority, by: plan.activatedBy, at: formatTime(plan.at) })), can('walls:drive') ? revert : null);
  }

  /** A button that runs one request at a time and tells the operator why it was refused. */
  private actionButton(action: string, label: string, run: () => Promise<void>, cls = ''): HTMLButtonElement {
    const button = h('button', { class: cls, dataset: { action } }, label);
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        await run();
      } catch (e) {
        this.ctx.notify(explain(e), 'error');
      } finally {
        button.disabled = false;
      }
    });
    return button;
  }

  private deleteButton(action: string, run: () => Promise<void>): HTMLButtonElement {
    const label = t('common.delete');
    let armed: ReturnType<typeof setTimeout> | undefined;
    const button = this.actionButton(action, label, async () => {
      if (armed === undefined) {
        button.textContent = t('preset.confirmDelete');
        button.classList.add('danger');
        armed = setTimeout(() => {
          armed = undefined;
          button.textContent = label;
          button.classList.remove('danger');
        }, CONFIRM_MS);
        return;
      }
      clearTimeout(armed);
      armed = undefined;
      await run();
    });
    return button;
  }

  private async recall(p: Presets[number]) {
    const wall = this.ctx.wall();
    if (!wall) return;
    await this.ctx.conn.request('preset.recall', { wallId: wall.id, presetId: p.id, baseVersion: wall.version });
    this.ctx.notify(t('preset.recalled', { name: p.name }), 'ok');
  }

  private async activate(p: Presets[number]) {
    const wall = this.ctx.wall();
    if (!wall) return;
    await this.ctx.conn.request('plan.activate', { wallId: wall.id, planId: p.id });
    this.ctx.notify(t('plan.activated', { name: p.name }), 'ok');
  }

  private async remove(type: 'preset.delete' | 'plan.delete', p: Presets[number]) {
    const wall = this.ctx.wall();
    if (!wall) return;
    if (type === 'preset.delete') await this.ctx.conn.request(type, { wallId: wall.id, presetId: p.id });
    else await this.ctx.conn.request(type, { wallId: wall.id, planId: p.id });
    this.ctx.notify(t('preset.deleted', { name: p.name }), 'ok');
  }
}
