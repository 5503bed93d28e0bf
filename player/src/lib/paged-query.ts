/**
 * A search over a paged list of the gateway (`items`, `nextCursor`), as the pages run it: typing
 * searches after a pause, each new search cancels the one in flight, and "load more" continues the
 * search that is shown, never a mix of the old one's cursor and the new one's filters.
 */
import { debounce } from './dom.js';
import { errorText } from './errors.js';

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export type QueryState = 'loading' | 'done' | 'failed';

/**
 * One search's pages: a new query aborts the request in flight and starts over; "load more" asks
 * for the page after the last one shown. Each page is fetched and shown for the query it was asked
 * for (the inputs may have changed since), and an answer to an older query never lands.
 */
export class PagedQuery<T, Q> {
  private abort: AbortController | null = null;
  private cursor: string | null = null;
  private generation = 0;
  private query: Q;
  shown = 0;

  constructor(
    private readonly snapshot: () => Q,
    private readonly fetchPage: (query: Q, cursor: string | null, signal: AbortSignal) => Promise<Page<T>>,
    private readonly onPage: (items: T[], append: boolean, more: boolean, query: Q) => void,
    private readonly onState: (state: QueryState, message?: string) => void,
  ) {
    this.query = snapshot();
  }

  start(): void {
    this.query = this.snapshot();
    // Until the new first page is in, there is nothing of this query to continue.
    this.cursor = null;
    this.shown = 0;
    void this.load(false);
  }

  more(): void {
    if (this.cursor) void this.load(true);
  }

  /** The input changed: whatever is in flight answers a query nobody is asking any more. */
  invalidate(): void {
    this.abort?.abort();
    this.generation++;
    this.onState('loading');
  }

  stop(): void {
    this.abort?.abort();
    this.generation++;
  }

  private async load(append: boolean) {
    this.abort?.abort();
    const abort = (this.abort = new AbortController());
    const generation = ++this.generation;
    const query = this.query;
    this.onState('loading');
    try {
      const page = await this.fetchPage(query, append ? this.cursor : null, abort.signal);
      if (generation !== this.generation) return;
      this.cursor = page.nextCursor;
      this.shown = (append ? this.shown : 0) + page.items.length;
      this.onPage(page.items, append, page.nextCursor !== null, query);
      this.onState('done');
    } catch (e) {
      if ((e as Error).name === 'AbortError' || generation !== this.generation) return;
      this.onState('failed', errorText(e));
    }
  }
}

export interface SearchControls {
  /** Text fields: searched after a pause in typing, at once on Enter. */
  typed: HTMLInputElement[];
  /** Choices (selects): searched at once when changed. */
  picked?: HTMLSelectElement[];
  more: HTMLButtonElement;
  pauseMs: number;
}

/** Wires a query to its inputs and its "load more" button. */
export function driveSearch(query: Pick<PagedQuery<unknown, unknown>, 'start' | 'more' | 'invalidate'>, c: SearchControls): void {
  const typed = debounce(() => query.start(), c.pauseMs);
  for (const input of c.typed) {
    input.addEventListener('input', () => {
      // "Load more" would continue the previous query's pages under the new text.
      c.more.hidden = true;
      query.invalidate();
      typed();
    });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') query.start();
    });
  }
  for (const select of c.picked ?? []) {
    select.addEventListener('change', () => {
      c.more.hidden = true;
      query.start();
    });
  }
  c.more.addEventListener('click', () => query.more());
}
