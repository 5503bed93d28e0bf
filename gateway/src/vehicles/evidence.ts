import { GatewayError, reasoned } from '../errors.js';
import type { Snapshotter } from '../snapshots/types.js';
import type { AlarmSnapshotWrite } from '../store/types.js';
import type { VehicleContext } from './context.js';
import type { Alarm, AlarmSnapshotError } from './model.js';

/** Who takes the pictures, for the viewing caps and the logs: no person asked for them. */
export const EVIDENCE_USER = 'system:alarm-evidence';

/** What evidence needs of the alarms section: the open alarm of an id, to show its picture at once. */
export interface EvidenceAlarms {
  openById(id: string): Alarm | undefined;
}

interface Job {
  alarmId: string;
  cameraId: string;
}

/**
 * Alarm evidence: one picture per alarm, taken when it opens and kept with it in the store. Taking
 * it never holds up the alarm: the alarm is raised, linked and stored first, the picture follows when
 * the camera gives one, and a failure is recorded as its error code, never thrown. At most
 * maxConcurrent pictures are taken at once and maxQueued wait, so an alarm storm cannot start a pull
 * per alarm; an alarm past the queue gets none (GW_ERR_CAPACITY) rather than one taken long after.
 */
export class AlarmEvidence {
  private readonly queue: Job[] = [];
  private running = 0;

  constructor(
    private readonly ctx: VehicleContext,
    private readonly snapshotter: Snapshotter | null,
    private readonly alarms: EvidenceAlarms,
  ) {}

  private get config() {
    return this.ctx.config.alarmSnapshots;
  }

  /** Asks for the alarm's picture from this camera; returns at once. */
  request(alarm: Alarm, cameraId: string): void {
    if (!this.snapshotter || !this.config.enabled || this.ctx.isClosed) return;
    if (this.running >= this.config.maxConcurrent && this.queue.length >= this.config.maxQueued) {
      const err = reasoned('GW_ERR_CAPACITY', 'alarmPictures', { limit: this.config.maxConcurrent + this.config.maxQueued }, `more than ${this.config.maxConcurrent + this.config.maxQueued} alarm pictures waiting (vehicles.alarmSnapshots)`);
      void this.record(this.failure({ alarmId: alarm.id, cameraId }, err));
      return;
    }
    this.queue.push({ alarmId: alarm.id, cameraId });
    this.pump();
  }

  /** The service is closing: pictures not yet started are not taken. */
  close(): void {
    this.queue.length = 0;
  }

  private pump() {
    while (this.running < this.config.maxConcurrent && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.running++;
      void this.take(job).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  private async take(job: Job): Promise<void> {
    let write: AlarmSnapshotWrite;
    try {
      const shot = await this.snapshotter!.take({ cameraId: job.cameraId, profile: 'main', width: this.config.width, userId: EVIDENCE_USER });
      if (!shot) throw new GatewayError('GW_ERR_CAMERA_NO_VIDEO', `camera ${job.cameraId} gave no picture`);
      write = { alarmId: job.alarmId, cameraId: shot.cameraId, takenAt: shot.takenAt, width: shot.width, height: shot.height, jpeg: shot.jpeg, error: null };
    } catch (err) {
      // The snapshot engine closes before the vehicles do: a picture the shutdown stopped is not a
      // fact about the camera, and recording it would mark the alarm as pictured for good.
      if (err instanceof GatewayError && err.code === 'GW_ERR_UNAVAILABLE') return;
      write = this.failure(job, err);
    }
    await this.record(write);
  }

  private failure(job: Job, err: unknown): AlarmSnapshotWrite {
    // The code and parameters a viewing of the camera would have got, so the page words it the same way.
    const failure: AlarmSnapshotError =
      err instanceof GatewayError
        ? { code: err.code, message: err.message, ...(err.params ? { params: err.params } : {}) }
        : { code: 'GW_ERR_INTERNAL', message: 'the picture could not be taken' };
    this.ctx.log.warn({ alarm: job.alarmId, camera: job.cameraId, code: failure.code, err: (err as Error)?.message }, 'alarm picture not taken');
    return { alarmId: job.alarmId, cameraId: job.cameraId, takenAt: this.ctx.clock(), width: 0, height: 0, jpeg: null, error: JSON.stringify(failure) };
  }

  /** Stores the outcome, shows it on the open alarm, and takes the pictures pruned to make room off theirs. */
  private async record(w: AlarmSnapshotWrite): Promise<void> {
    // Never in the turn that raised the alarm: its own row, which this one refers to, is asked for at the end of that turn,
    // and is in the store only once that write is done (a round trip away on PostgreSQL).
    await Promise.resolve();
    await this.ctx.alarmWritten(w.alarmId);
    // Once closing began the store may close under the write: a picture finished that late is dropped.
    if (this.ctx.isClosed) return;
    let pruned: string[];
    try {
      pruned = await this.ctx.track(this.ctx.store.alarms.saveSnapshot(w, { maxCount: this.config.maxCount, maxBytes: this.config.maxBytes }));
    } catch (err) {
      this.ctx.log.error({ alarm: w.alarmId, err: (err as Error).message }, 'alarm picture not saved');
      return;
    }
    const kept = !pruned.includes(w.alarmId);
    const failure = kept && w.error ? (JSON.parse(w.error) as AlarmSnapshotError) : null;
    this.show(w.alarmId, kept && w.jpeg && w.cameraId ? { cameraId: w.cameraId, takenAt: w.takenAt, width: w.width, height: w.height } : null, failure);
    for (const id of pruned) if (id !== w.alarmId) this.show(id, null, null);
  }

  private show(alarmId: string, snapshot: Alarm['snapshot'], snapshotError: AlarmSnapshotError | null) {
    const alarm = this.alarms.openById(alarmId);
    if (!alarm || (alarm.snapshot === snapshot && alarm.snapshotError === snapshotError)) return;
    alarm.snapshot = snapshot;
    alarm.snapshotError = snapshotError;
    this.ctx.events.emit('alarm', alarm, 'updated');
  }
}
