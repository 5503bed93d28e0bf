/** A small element builder: the pages are plain DOM, without a framework to keep alive on a wall for months. */
export type Child = Node | string | number | null | undefined | false | Child[];
type Props = Record<string, unknown> & { class?: string; style?: string; dataset?: Record<string, string> };

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props | null = null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = String(value);
    else if (key === 'style') el.style.cssText = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value as EventListener);
    else if (key in el && typeof value !== 'string') (el as unknown as Record<string, unknown>)[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(parent, c);
    else parent.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** Replaces an element's children. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

/** Calls `fn` once input has paused for `ms`; typing again restarts the wait. */
export function debounce<A extends unknown[]>(fn: (...args: A) => void, ms: number): (...args: A) => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return (...args: A) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** A short message at the corner of the screen: errors stay until clicked, others fade. */
export function toast(message: string, kind: 'info' | 'error' | 'ok' = 'info'): void {
  let box = document.getElementById('toasts');
  if (!box) document.body.append((box = h('div', { id: 'toasts', role: 'status', 'aria-live': 'polite' })));
  const el = h('div', { class: `toast toast-${kind}`, onclick: () => el.remove() }, message);
  box.append(el);
  if (kind !== 'error') setTimeout(() => el.remove(), 4_000);
  else setTimeout(() => el.remove(), 15_000);
}

/**
 * A tab bar over `tabs`' panels: the first shows, a click shows its own and hides the others.
 * Buttons carry `data-tab=<key>`; `onShow` runs for the panel shown (to focus its input, say).
 */
export function tabBar(tabs: Array<{ key: string; label: string; panel: HTMLElement }>, onShow?: (panel: HTMLElement) => void): HTMLElement {
  const buttons = tabs.map((tab, i) =>
    h(
      'button',
      {
        type: 'button',
        role: 'tab',
        class: 'tab',
        'aria-selected': String(i === 0),
        dataset: { tab: tab.key },
        onclick: () => {
          tabs.forEach((other, j) => {
            other.panel.hidden = other !== tab;
            buttons[j]!.setAttribute('aria-selected', String(other === tab));
          });
          onShow?.(tab.panel);
        },
      },
      tab.label,
    ),
  );
  tabs.forEach((tab, i) => (tab.panel.hidden = i !== 0));
  return h('div', { class: 'tabs', role: 'tablist' }, buttons);
}
