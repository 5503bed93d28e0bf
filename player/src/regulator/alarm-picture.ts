/**
 * An alarm's evidence picture (`GET /api/alarms/:id/snapshot.jpg`), taken by the gateway when the
 * alarm opened: fetched with the bearer header and shown from a blob URL that is revoked when it is
 * replaced or the picture goes. The alarm card shows it small, the vehicle panel's alarm large.
 */
import type { Alarm } from '../../../gateway/src/vehicles/model.js';
import { apiBlob } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { codeText, errorText } from '../lib/errors.js';
import { addStrings, t } from '../lib/i18n.js';
import { BlobPicture, RequestSlots } from '../lib/snapshots.js';
import { fullTime, shortTime } from './labels.js';

addStrings({
  'picture.alt': ['Picture of {plate} when the alarm opened', '告警发生时 {plate} 的抓拍'],
  'picture.caption': ['{camera} at {at}', '{camera} · {at}'],
  'picture.none': ['No picture ({reason})', '无抓拍（{reason}）'],
  'picture.failed': ['The picture could not be loaded: {message}', '抓拍图片加载失败：{message}'],
});

/** A list of many alarms fetches its pictures a few at a time. */
const slots = new RequestSlots(3);

export class AlarmPicture {
  readonly el: HTMLElement;
  private readonly img: HTMLImageElement;
  private readonly caption: HTMLElement;
  private readonly picture: BlobPicture;
  /** alarm id and takenAt of the picture shown or being fetched, '' for none. */
  private key = '';
  private abort: AbortController | null = null;

  constructor(size: 'small' | 'large') {
    this.img = h('img', { class: 'alarm-picture-img', hidden: true, decoding: 'async' });
    this.caption = h('figcaption', { class: 'muted' });
    this.picture = new BlobPicture(this.img);
    this.el = h('figure', { class: `alarm-picture ${size}`, hidden: true }, this.img, this.caption);
  }

  /** Shows the alarm's picture, fetching it only when it is one this element does not show yet. */
  update(alarm: Alarm): void {
    const shot = alarm.snapshot;
    const key = shot ? `${alarm.id}@${shot.takenAt}` : '';
    this.el.dataset.state = shot ? 'taken' : alarm.snapshotError ? 'failed' : 'none';
    if (!shot) {
      this.drop();
      const failure = alarm.snapshotError;
      this.el.hidden = !failure;
      // Worded from the code and parameters, as a tile's failure is; the code itself stays at hand.
      this.caption.textContent = failure ? t('picture.none', { reason: codeText(failure).replace(/[.。]$/, '') }) : '';
      this.caption.title = failure?.code ?? '';
      return;
    }
    this.el.hidden = false;
    this.img.alt = t('picture.alt', { plate: alarm.plate });
    this.caption.textContent = t('picture.caption', { camera: shot.cameraId, at: shortTime(shot.takenAt) });
    this.caption.title = fullTime(shot.takenAt);
    if (key === this.key) return;
    this.drop();
    this.key = key;
    const abort = (this.abort = new AbortController());
    slots
      .run(abort.signal, () => apiBlob(`/api/alarms/${encodeURIComponent(alarm.id)}/snapshot.jpg`, { signal: abort.signal }))
      .then(
        (blob) => {
          if (this.abort !== abort) return;
          if (blob) this.picture.show(blob);
        },
        (err: unknown) => {
          if (this.abort !== abort || abort.signal.aborted) return;
          this.caption.textContent = t('picture.failed', { message: errorText(err) });
          // Asked again at the next update: a picture pruned meanwhile answers 404 each time, but the alarm's own push says so first.
          this.key = '';
        },
      )
      .finally(() => {
        if (this.abort === abort) this.abort = null;
      });
  }

  /** Stops a fetch in flight and revokes the picture's blob URL. */
  destroy(): void {
    this.drop();
  }

  private drop() {
    this.abort?.abort();
    this.abort = null;
    this.key = '';
    this.picture.clear();
  }
}
